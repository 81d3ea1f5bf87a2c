//! Key files: a user's private key wrapped under a passphrase with Argon2id, as JSON — the
//! thing a clinician keeps on removable media or in the browser's storage.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::aead::{NONCE_LEN, TAG_LEN, decrypt_in_place, encrypt_after_header};
use crate::encoding::{Binding, b64_decode, b64_encode};
use crate::random::random_array;
use crate::{CryptoError, Format, PublicKey, ShapeError, UserKeyPair};

/// The `format` member of every key file.
pub const KEY_FILE_FORMAT: &str = "palreg-key-file";
/// The `version` member of key files this crate writes and reads, also the version byte of the
/// wrapped private key.
pub const KEY_FILE_VERSION: u8 = 1;
/// Domain-separation label at the start of the wrapped key's associated data.
pub const KEY_FILE_DOMAIN: &str = "palreg/key-file/v1";
/// Argon2 version 1.3, the only one accepted.
pub const ARGON2_VERSION: u32 = 0x13;
/// Minimum characters of a new key file's passphrase.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Salt length written by this crate.
pub const SALT_LEN: usize = 16;
const MAX_SALT_LEN: usize = 64;
/// `version(1) | nonce(12) | ciphertext(32) | tag(16)`.
const WRAPPED_KEY_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;

/// Argon2id cost parameters, stated in every key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl KdfParams {
    /// The floor: OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane). Key files
    /// below it are neither written nor read.
    pub const MINIMUM: KdfParams = KdfParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// The ceiling a reader accepts, so a hostile file cannot exhaust a browser tab.
    pub const MAXIMUM: KdfParams = KdfParams {
        memory_kib: 256 * 1024,
        iterations: 16,
        parallelism: 8,
    };
    /// What [`UserKeyPair::export_key_file`] uses.
    pub const DEFAULT: KdfParams = KdfParams::MINIMUM;

    /// Refuses parameters below [`KdfParams::MINIMUM`] or above [`KdfParams::MAXIMUM`].
    pub fn check(&self) -> Result<(), CryptoError> {
        let (lo, hi) = (Self::MINIMUM, Self::MAXIMUM);
        let ok = (lo.memory_kib..=hi.memory_kib).contains(&self.memory_kib)
            && (lo.iterations..=hi.iterations).contains(&self.iterations)
            && (lo.parallelism..=hi.parallelism).contains(&self.parallelism)
            // Argon2 needs 8 KiB per lane.
            && self.memory_kib >= 8 * self.parallelism;
        if ok {
            Ok(())
        } else {
            Err(CryptoError::WeakKdfParameters)
        }
    }

    fn derive(&self, passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        self.check()?;
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|_| CryptoError::WeakKdfParameters)?;
        let normalized = Zeroizing::new(normalize_passphrase(passphrase));
        let mut out = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(normalized.as_bytes(), salt, &mut *out)
            .map_err(|_| CryptoError::WeakKdfParameters)?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Passphrases are NFC-normalized so the same typed text unlocks the file on any system.
fn normalize_passphrase(passphrase: &str) -> String {
    passphrase.nfc().collect()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    format: String,
    version: u8,
    kdf: KdfJson,
    public_key: String,
    wrapped_private_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfJson {
    algorithm: String,
    argon2_version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

/// The associated data of the wrapped key: binds the stated public key and every KDF input.
fn wrap_aad(public_key: &PublicKey, params: &KdfParams, salt: &[u8]) -> Binding {
    let mut aad = Binding::new(KEY_FILE_DOMAIN);
    aad.raw(&public_key.encoded_bytes())
        .u32(params.memory_kib)
        .u32(params.iterations)
        .u32(params.parallelism)
        .bytes(salt);
    aad
}

struct ParsedKeyFile {
    params: KdfParams,
    salt: Vec<u8>,
    public_key: PublicKey,
    wrapped: Vec<u8>,
}

fn parse(json: &str) -> Result<ParsedKeyFile, CryptoError> {
    let file: KeyFileJson = serde_json::from_str(json)
        .map_err(|_| CryptoError::InvalidKeyFile("not a palreg key file"))?;
    if file.format != KEY_FILE_FORMAT {
        return Err(CryptoError::InvalidKeyFile("not a palreg key file"));
    }
    if file.version != KEY_FILE_VERSION {
        return Err(ShapeError::UnsupportedVersion {
            format: Format::KeyFile,
            version: file.version,
        }
        .into());
    }
    if file.kdf.algorithm != "argon2id" || file.kdf.argon2_version != ARGON2_VERSION {
        return Err(CryptoError::InvalidKeyFile(
            "only Argon2id version 19 is supported",
        ));
    }
    let params = KdfParams {
        memory_kib: file.kdf.memory_kib,
        iterations: file.kdf.iterations,
        parallelism: file.kdf.parallelism,
    };
    params.check()?;
    let salt = b64_decode(&file.kdf.salt, Format::KeyFile, MAX_SALT_LEN)?;
    if salt.len() < SALT_LEN {
        return Err(ShapeError::InvalidLength(Format::KeyFile).into());
    }
    let public_key = PublicKey::parse(&file.public_key)?;
    let wrapped = b64_decode(&file.wrapped_private_key, Format::KeyFile, WRAPPED_KEY_LEN)?;
    let version = *wrapped
        .first()
        .ok_or(ShapeError::InvalidLength(Format::KeyFile))?;
    if version != KEY_FILE_VERSION {
        return Err(ShapeError::UnsupportedVersion {
            format: Format::KeyFile,
            version,
        }
        .into());
    }
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(ShapeError::InvalidLength(Format::KeyFile).into());
    }
    Ok(ParsedKeyFile {
        params,
        salt,
        public_key,
        wrapped,
    })
}

/// The public key stated in a key file, read without the passphrase (to show the fingerprint
/// before unlocking). Not authenticated until the file is unlocked.
pub fn key_file_public_key(json: &str) -> Result<PublicKey, CryptoError> {
    parse(json).map(|f| f.public_key)
}

/// The Argon2id parameters stated in a key file.
pub fn key_file_params(json: &str) -> Result<KdfParams, CryptoError> {
    parse(json).map(|f| f.params)
}

impl UserKeyPair {
    /// Writes a key file protecting this key pair's private key under `passphrase`, with the
    /// default Argon2id parameters ([`KdfParams::DEFAULT`]).
    pub fn export_key_file(&self, passphrase: &str) -> Result<String, CryptoError> {
        self.export_key_file_with(passphrase, KdfParams::DEFAULT)
    }

    /// Writes a key file with the given Argon2id parameters (at least [`KdfParams::MINIMUM`]).
    /// The passphrase needs at least [`MIN_PASSPHRASE_CHARS`] characters.
    pub fn export_key_file_with(
        &self,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<String, CryptoError> {
        self.export_key_file_inner(
            passphrase,
            params,
            &random_array::<SALT_LEN>()?,
            &random_array()?,
        )
    }

    pub(crate) fn export_key_file_inner(
        &self,
        passphrase: &str,
        params: KdfParams,
        salt: &[u8; SALT_LEN],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, CryptoError> {
        if normalize_passphrase(passphrase).chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(CryptoError::WeakPassphrase {
                min: MIN_PASSPHRASE_CHARS,
            });
        }
        let wrapping_key = params.derive(passphrase, salt)?;
        let cipher = Aes256Gcm::new(&(*wrapping_key).into());
        let aad = wrap_aad(self.public_key(), &params, salt);
        let mut header = [0u8; 1 + NONCE_LEN];
        header[0] = KEY_FILE_VERSION;
        header[1..].copy_from_slice(nonce);
        let secret = Zeroizing::new(self.secret().to_bytes());
        let wrapped = encrypt_after_header(&cipher, &header, nonce, aad.as_slice(), &*secret)?;
        let file = KeyFileJson {
            format: KEY_FILE_FORMAT.to_owned(),
            version: KEY_FILE_VERSION,
            kdf: KdfJson {
                algorithm: "argon2id".to_owned(),
                argon2_version: ARGON2_VERSION,
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
                salt: b64_encode(salt),
            },
            public_key: self.public_key().encode(),
            wrapped_private_key: b64_encode(&wrapped),
        };
        serde_json::to_string_pretty(&file)
            .map_err(|_| CryptoError::InvalidKeyFile("serialization failed"))
    }

    /// Unlocks a key file. A wrong passphrase (or an altered file) is
    /// [`CryptoError::WrongPassphrase`], never a wrong key.
    pub fn import_key_file(json: &str, passphrase: &str) -> Result<UserKeyPair, CryptoError> {
        let ParsedKeyFile {
            params,
            salt,
            public_key,
            wrapped,
        } = parse(json)?;
        let wrapping_key = params.derive(passphrase, &salt)?;
        let cipher = Aes256Gcm::new(&(*wrapping_key).into());
        let aad = wrap_aad(&public_key, &params, &salt);
        let mut wrapped = Zeroizing::new(wrapped);
        let (nonce, body) = wrapped[1..].split_at_mut(NONCE_LEN);
        let len = decrypt_in_place(&cipher, nonce, aad.as_slice(), body)
            .map_err(|_| CryptoError::WrongPassphrase)?;
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
            body[..len]
                .try_into()
                .map_err(|_| CryptoError::InvalidKeyFile("wrapped key has the wrong length"))?,
        );
        let pair = UserKeyPair::from_secret_bytes(*secret)?;
        if pair.public_key() != &public_key {
            return Err(CryptoError::InvalidKeyFile(
                "public key does not match the private key",
            ));
        }
        Ok(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_import_and_wrong_passphrase() {
        let pair = UserKeyPair::generate().unwrap();
        let file = pair.export_key_file("correct horse battery").unwrap();
        assert_eq!(key_file_public_key(&file).unwrap(), *pair.public_key());
        assert_eq!(key_file_params(&file).unwrap(), KdfParams::MINIMUM);
        let back = UserKeyPair::import_key_file(&file, "correct horse battery").unwrap();
        assert_eq!(back.public_key(), pair.public_key());
        assert_eq!(
            UserKeyPair::import_key_file(&file, "correct horse batterY").unwrap_err(),
            CryptoError::WrongPassphrase
        );
    }

    #[test]
    fn flipped_bytes_of_the_wrapped_key_fail() {
        let pair = UserKeyPair::generate().unwrap();
        let file = pair.export_key_file("long enough").unwrap();
        let json: serde_json::Value = serde_json::from_str(&file).unwrap();
        let wrapped = b64_decode(
            json["wrapped_private_key"].as_str().unwrap(),
            Format::KeyFile,
            64,
        )
        .unwrap();
        // Version byte, first and last nonce byte, first and last ciphertext byte, first and
        // last tag byte.
        for (i, code) in [
            (0, "unsupported_version"),
            (1, "wrong_passphrase"),
            (12, "wrong_passphrase"),
            (13, "wrong_passphrase"),
            (44, "wrong_passphrase"),
            (45, "wrong_passphrase"),
            (60, "wrong_passphrase"),
        ] {
            let mut t = wrapped.clone();
            t[i] ^= 0x01;
            let mut edited = json.clone();
            edited["wrapped_private_key"] = serde_json::Value::String(b64_encode(&t));
            let err = UserKeyPair::import_key_file(&edited.to_string(), "long enough").unwrap_err();
            assert_eq!(err.code(), code, "byte {i}");
        }
    }

    #[test]
    fn passphrase_is_nfc_normalized() {
        let pair = UserKeyPair::generate().unwrap();
        // "й" precomposed (U+0439) and decomposed (U+0438 U+0306).
        let file = pair.export_key_file("пароль-й-пароль").unwrap();
        assert!(UserKeyPair::import_key_file(&file, "пароль-и\u{306}-пароль").is_ok());
    }

    #[test]
    fn weak_settings_are_refused_on_creation() {
        let pair = UserKeyPair::generate().unwrap();
        assert_eq!(
            pair.export_key_file("short").unwrap_err(),
            CryptoError::WeakPassphrase {
                min: MIN_PASSPHRASE_CHARS
            }
        );
        let weak = KdfParams {
            memory_kib: 1024,
            ..KdfParams::MINIMUM
        };
        assert_eq!(
            pair.export_key_file_with("long enough", weak).unwrap_err(),
            CryptoError::WeakKdfParameters
        );
        let huge = KdfParams {
            memory_kib: 1 << 30,
            ..KdfParams::MINIMUM
        };
        assert_eq!(huge.check(), Err(CryptoError::WeakKdfParameters));
    }

    #[test]
    fn stated_weak_parameters_are_refused_before_any_work() {
        let pair = UserKeyPair::generate().unwrap();
        let file = pair.export_key_file("long enough").unwrap();
        let weakened = file.replace("\"iterations\": 2", "\"iterations\": 1");
        assert_ne!(weakened, file);
        assert_eq!(
            UserKeyPair::import_key_file(&weakened, "long enough").unwrap_err(),
            CryptoError::WeakKdfParameters
        );
    }
}
