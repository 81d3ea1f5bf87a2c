//! The institution key: the symmetric key of one institution, under which passports and notes
//! are sealed and from which blind-index keys are derived.

use std::fmt;
use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use hmac::Hmac;
use sha2::Sha256;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;
use crate::blind_index::{self, BlindIndexField};
use crate::random::random_array;

/// Length of an institution key in bytes.
pub const INSTITUTION_KEY_LEN: usize = 32;

/// A random 256-bit AES-256-GCM key with its version number.
///
/// Never leaves the client in clear: it travels only inside key envelopes. Its bytes are
/// zeroized on drop (and so are the expanded AES round keys and the derived blind-index
/// keys), `Debug` shows only the version, and it is not `Serialize`.
pub struct InstitutionKey {
    version: u32,
    bytes: Zeroizing<[u8; INSTITUTION_KEY_LEN]>,
    cipher: Aes256Gcm,
    /// Keyed HMAC states of the blind-index keys, derived on first use.
    blind_keys: [OnceLock<Hmac<Sha256>>; BlindIndexField::ALL.len()],
}

impl InstitutionKey {
    /// A fresh random key with the given version (1 for a new institution, the previous
    /// version + 1 for a rotation).
    pub fn generate(version: u32) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(random_array::<INSTITUTION_KEY_LEN>()?);
        Ok(Self::from_bytes(version, bytes))
    }

    pub(crate) fn from_bytes(version: u32, bytes: Zeroizing<[u8; INSTITUTION_KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(&(*bytes).into());
        InstitutionKey {
            version,
            bytes,
            cipher,
            blind_keys: Default::default(),
        }
    }

    /// The key's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn bytes(&self) -> &[u8; INSTITUTION_KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    pub(crate) fn blind_key(&self, field: BlindIndexField) -> &Hmac<Sha256> {
        self.blind_keys[field.slot()].get_or_init(|| blind_index::derive_key(self.bytes(), field))
    }
}

// Every field clears itself on drop: Zeroizing bytes, AES/GHASH state (aes-gcm `zeroize`),
// HMAC states (their SHA-256 cores and buffers, with the sha2/hmac `zeroize` features).
impl ZeroizeOnDrop for InstitutionKey {}

impl fmt::Debug for InstitutionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstitutionKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn parts_zeroize_on_drop() {
        assert_zeroize_on_drop::<Aes256Gcm>();
        // HMAC states hold SHA-256 cores and block buffers, which clear themselves on drop
        // with the sha2/digest `zeroize` features (the marker is not re-exported by hmac).
        assert_zeroize_on_drop::<sha2::Sha256>();
        assert_zeroize_on_drop::<InstitutionKey>();
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let key = InstitutionKey::from_bytes(3, Zeroizing::new([0xAB; 32]));
        let shown = format!("{key:?}");
        assert_eq!(shown, "InstitutionKey { version: 3, .. }");
    }

    #[test]
    fn generated_keys_differ() {
        let a = InstitutionKey::generate(1).unwrap();
        let b = InstitutionKey::generate(1).unwrap();
        assert_ne!(a.bytes(), b.bytes());
    }
}
