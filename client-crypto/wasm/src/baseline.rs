//! Raw-key primitives, only with the `bench-baseline` feature, so bench/wasm can measure what
//! the wrapped operations cost over the bare library calls in the same WASM build.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasm_bindgen::prelude::*;

fn err(what: &str) -> JsError {
    JsError::new(what)
}

/// Bare AES-256-GCM with a prepared key schedule.
#[wasm_bindgen]
pub struct BareAesGcm(Aes256Gcm);

#[wasm_bindgen]
impl BareAesGcm {
    /// A cipher for a 32-byte key.
    #[wasm_bindgen(constructor)]
    pub fn new(key: &[u8]) -> Result<BareAesGcm, JsError> {
        Aes256Gcm::new_from_slice(key)
            .map(BareAesGcm)
            .map_err(|_| err("key must be 32 bytes"))
    }

    /// `ciphertext | tag`.
    pub fn encrypt(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, JsError> {
        let nonce = Nonce::try_from(nonce).map_err(|_| err("nonce must be 12 bytes"))?;
        let mut buf = plaintext.to_vec();
        let tag = self
            .0
            .encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into())
            .map_err(|_| err("encryption failed"))?;
        buf.extend_from_slice(&tag);
        Ok(buf)
    }

    /// The plaintext of `ciphertext | tag`.
    pub fn decrypt(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, JsError> {
        let nonce = Nonce::try_from(nonce).map_err(|_| err("nonce must be 12 bytes"))?;
        let split = ciphertext
            .len()
            .checked_sub(16)
            .ok_or_else(|| err("too short"))?;
        let (ct, tag) = ciphertext.split_at(split);
        let tag = Tag::try_from(tag).map_err(|_| err("bad tag"))?;
        let mut buf = ct.to_vec();
        self.0
            .decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
            .map_err(|_| err("decryption failed"))?;
        Ok(buf)
    }
}

/// Bare X25519 with a fixed secret.
#[wasm_bindgen]
pub struct BareX25519(x25519_dalek::StaticSecret);

#[wasm_bindgen]
impl BareX25519 {
    /// A secret from 32 bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(secret: &[u8]) -> Result<BareX25519, JsError> {
        let bytes: [u8; 32] = secret
            .try_into()
            .map_err(|_| err("secret must be 32 bytes"))?;
        Ok(BareX25519(x25519_dalek::StaticSecret::from(bytes)))
    }

    /// The raw public key.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        x25519_dalek::PublicKey::from(&self.0).as_bytes().to_vec()
    }

    /// One Diffie-Hellman exchange with a raw 32-byte public key.
    #[wasm_bindgen(js_name = diffieHellman)]
    pub fn diffie_hellman(&self, public: &[u8]) -> Result<Vec<u8>, JsError> {
        let bytes: [u8; 32] = public
            .try_into()
            .map_err(|_| err("public key must be 32 bytes"))?;
        Ok(self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(bytes))
            .as_bytes()
            .to_vec())
    }
}

/// Bare HMAC-SHA256 with a prepared key.
#[wasm_bindgen]
pub struct BareHmacSha256(Hmac<Sha256>);

#[wasm_bindgen]
impl BareHmacSha256 {
    /// A MAC for `key`.
    #[wasm_bindgen(constructor)]
    pub fn new(key: &[u8]) -> Result<BareHmacSha256, JsError> {
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
            .map(BareHmacSha256)
            .map_err(|_| err("bad key"))
    }

    /// The first 8 bytes of the tag of `message`.
    pub fn mac8(&self, message: &[u8]) -> Vec<u8> {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes()[..8].to_vec()
    }
}

/// Bare Argon2id into 32 bytes.
#[wasm_bindgen(js_name = bareArgon2id)]
pub fn bare_argon2id(
    password: &[u8],
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Vec<u8>, JsError> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|_| err("bad parameters"))?;
    let mut out = vec![0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(|_| err("argon2 failed"))?;
    Ok(out)
}
