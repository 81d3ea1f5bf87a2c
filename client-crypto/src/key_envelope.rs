//! Key envelopes: an institution key wrapped to a user's public key (ECIES-style: ephemeral
//! X25519, HKDF-SHA256, AES-256-GCM). The server stores them and cannot open them.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::aead::{NONCE_LEN, TAG_LEN, decrypt_in_place, encrypt_after_header};
use crate::encoding::{Binding, b64_decode, b64_encode};
use crate::institution_key::INSTITUTION_KEY_LEN;
use crate::random::random_array;
use crate::{CryptoError, Format, InstitutionKey, PublicKey, ShapeError, UserKeyPair};

/// Version byte of key envelopes.
pub const KEY_ENVELOPE_VERSION: u8 = 1;
/// Domain-separation label at the start of the HKDF info.
pub const KEY_ENVELOPE_DOMAIN: &str = "palreg/key-envelope/v1";
/// `version(1) | ephemeral public key(32)`: the header, also the AES-GCM associated data.
const HEADER_LEN: usize = 1 + 32;
/// Length of a key envelope in bytes (before base64url).
pub const KEY_ENVELOPE_LEN: usize = HEADER_LEN + NONCE_LEN + INSTITUTION_KEY_LEN + TAG_LEN;

/// What a key envelope's structure says, checked without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEnvelopeInfo {
    /// The format version byte.
    pub version: u8,
}

struct ParsedEnvelope {
    bytes: Vec<u8>,
    ephemeral: [u8; 32],
}

fn parse(text: &str) -> Result<ParsedEnvelope, ShapeError> {
    let bytes = b64_decode(text, Format::KeyEnvelope, KEY_ENVELOPE_LEN)?;
    let version = *bytes
        .first()
        .ok_or(ShapeError::InvalidLength(Format::KeyEnvelope))?;
    if version != KEY_ENVELOPE_VERSION {
        return Err(ShapeError::UnsupportedVersion {
            format: Format::KeyEnvelope,
            version,
        });
    }
    if bytes.len() != KEY_ENVELOPE_LEN {
        return Err(ShapeError::InvalidLength(Format::KeyEnvelope));
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&bytes[1..HEADER_LEN]);
    Ok(ParsedEnvelope { bytes, ephemeral })
}

/// Checks a key envelope's structure without a key (see [`crate::shape`]), including that the
/// ephemeral key is not of low order (which would make the shared secret predictable; opening
/// finds the same through the shared secret, without this extra scalar multiplication).
pub(crate) fn check(text: &str) -> Result<KeyEnvelopeInfo, ShapeError> {
    let parsed = parse(text)?;
    PublicKey::from_raw(parsed.ephemeral)?;
    Ok(KeyEnvelopeInfo {
        version: KEY_ENVELOPE_VERSION,
    })
}

/// The AES-256-GCM key of one envelope: HKDF-SHA256 with the shared secret as input key
/// material, `ephemeral_public | recipient_public` as salt, and an info that binds the
/// recipient's user id, the institution and the key version.
fn wrapping_cipher(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
    recipient_user_id: i64,
    institution_id: i64,
    key_version: u32,
) -> Aes256Gcm {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let mut info = Binding::new(KEY_ENVELOPE_DOMAIN);
    info.i64(recipient_user_id)
        .i64(institution_id)
        .u32(key_version);
    let mut okm = Zeroizing::new([0u8; 32]);
    let expanded = Hkdf::<Sha256>::new(Some(&salt), shared).expand(info.as_slice(), &mut *okm);
    debug_assert!(
        expanded.is_ok(),
        "32 bytes is a valid HKDF-SHA256 output length"
    );
    Aes256Gcm::new(&(*okm).into())
}

impl InstitutionKey {
    /// Wraps this key to `recipient` (user `recipient_user_id`) for institution
    /// `institution_id`. The key version is bound too.
    pub fn wrap_for(
        &self,
        recipient: &PublicKey,
        recipient_user_id: i64,
        institution_id: i64,
    ) -> Result<String, CryptoError> {
        let ephemeral = Zeroizing::new(random_array::<32>()?);
        self.wrap_for_with(
            recipient,
            recipient_user_id,
            institution_id,
            &ephemeral,
            &random_array()?,
        )
    }

    pub(crate) fn wrap_for_with(
        &self,
        recipient: &PublicKey,
        recipient_user_id: i64,
        institution_id: i64,
        ephemeral_secret: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, CryptoError> {
        let ephemeral = StaticSecret::from(*ephemeral_secret);
        let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(&recipient.to_dalek());
        if !shared.was_contributory() {
            return Err(ShapeError::LowOrderPublicKey.into());
        }
        let cipher = wrapping_cipher(
            shared.as_bytes(),
            ephemeral_public.as_bytes(),
            recipient.as_bytes(),
            recipient_user_id,
            institution_id,
            self.version(),
        );
        let mut header = [0u8; HEADER_LEN + NONCE_LEN];
        header[0] = KEY_ENVELOPE_VERSION;
        header[1..HEADER_LEN].copy_from_slice(ephemeral_public.as_bytes());
        header[HEADER_LEN..].copy_from_slice(nonce);
        let envelope =
            encrypt_after_header(&cipher, &header, nonce, &header[..HEADER_LEN], self.bytes())?;
        Ok(b64_encode(&envelope))
    }
}

impl UserKeyPair {
    /// Opens a key envelope addressed to this key pair (user `recipient_user_id`) for
    /// institution `institution_id`, version `key_version`. Any other user id, institution or
    /// version, another recipient, or a tampered envelope fails.
    pub fn open_key_envelope(
        &self,
        envelope: &str,
        recipient_user_id: i64,
        institution_id: i64,
        key_version: u32,
    ) -> Result<InstitutionKey, CryptoError> {
        let ParsedEnvelope { bytes, ephemeral } = parse(envelope)?;
        let mut bytes = Zeroizing::new(bytes);
        let shared = self
            .secret()
            .diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
        if !shared.was_contributory() {
            return Err(ShapeError::LowOrderPublicKey.into());
        }
        let cipher = wrapping_cipher(
            shared.as_bytes(),
            &ephemeral,
            self.public_key().as_bytes(),
            recipient_user_id,
            institution_id,
            key_version,
        );
        let (header, rest) = bytes.split_at_mut(HEADER_LEN);
        let (nonce, body) = rest.split_at_mut(NONCE_LEN);
        let len = decrypt_in_place(&cipher, nonce, header, body)?;
        let key: [u8; INSTITUTION_KEY_LEN] = body[..len]
            .try_into()
            .map_err(|_| CryptoError::DecryptionFailed)?;
        Ok(InstitutionKey::from_bytes(key_version, Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap() {
        let alice = UserKeyPair::generate().unwrap();
        let bob = UserKeyPair::generate().unwrap();
        let key = InstitutionKey::generate(3).unwrap();
        let env = key.wrap_for(alice.public_key(), 42, 7).unwrap();
        assert_eq!(check(&env).unwrap().version, 1);
        let opened = alice.open_key_envelope(&env, 42, 7, 3).unwrap();
        assert_eq!(opened.bytes(), key.bytes());
        assert_eq!(opened.version(), 3);
        for (user, inst, ver) in [(43, 7, 3), (42, 8, 3), (42, 7, 4)] {
            assert_eq!(
                alice.open_key_envelope(&env, user, inst, ver).unwrap_err(),
                CryptoError::DecryptionFailed
            );
        }
        assert_eq!(
            bob.open_key_envelope(&env, 42, 7, 3).unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }

    #[test]
    fn every_flipped_byte_fails() {
        let alice = UserKeyPair::generate().unwrap();
        let key = InstitutionKey::generate(1).unwrap();
        let env = key.wrap_for(alice.public_key(), 1, 1).unwrap();
        let bytes = b64_decode(&env, Format::KeyEnvelope, KEY_ENVELOPE_LEN).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x80;
            assert!(
                alice.open_key_envelope(&b64_encode(&t), 1, 1, 1).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn low_order_ephemeral_key_is_refused() {
        let alice = UserKeyPair::generate().unwrap();
        let mut bytes = vec![KEY_ENVELOPE_VERSION];
        bytes.resize(KEY_ENVELOPE_LEN, 0);
        let env = b64_encode(&bytes);
        assert_eq!(check(&env), Err(ShapeError::LowOrderPublicKey));
        assert_eq!(
            alice.open_key_envelope(&env, 1, 1, 1).unwrap_err(),
            CryptoError::Shape(ShapeError::LowOrderPublicKey)
        );
    }
}
