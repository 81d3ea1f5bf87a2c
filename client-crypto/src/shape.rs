//! Structural checks the server runs on what clients upload, without any key: version bytes,
//! lengths, encodings. They cannot tell whether a ciphertext opens — only that it is
//! well-formed, so garbage is refused with a 400 instead of being stored.
//!
//! Every error has a stable [`ShapeError::code`] for the API's error body.

pub use crate::aead::SealedInfo;
pub use crate::blind_index::MAX_BLIND_INDEX_TOKEN_CHARS;
pub use crate::key_envelope::KeyEnvelopeInfo;
pub use crate::{BlindIndexBits, BlindIndexField, Fingerprint, Pseudonym, ShapeError};

use crate::{BlindIndex, PublicKey, key_envelope, note, passport};

/// Characters of `n` bytes in base64url without padding.
const fn b64_chars(n: usize) -> usize {
    (4 * n).div_ceil(3)
}

/// Longest passport envelope in base64url characters (largest bucket).
pub const MAX_PASSPORT_ENVELOPE_CHARS: usize = b64_chars(
    crate::aead::SEALED_HEADER_LEN + crate::padding::MAX_PASSPORT_PADDED + crate::aead::TAG_LEN,
);
/// Longest sealed note in base64url characters (largest bucket).
pub const MAX_SEALED_NOTE_CHARS: usize = b64_chars(
    crate::aead::SEALED_HEADER_LEN + crate::padding::MAX_NOTE_PADDED + crate::aead::TAG_LEN,
);
/// Length of a key envelope in base64url characters.
pub const KEY_ENVELOPE_CHARS: usize = b64_chars(key_envelope::KEY_ENVELOPE_LEN);
/// Length of an encoded public key in base64url characters.
pub const PUBLIC_KEY_CHARS: usize = b64_chars(crate::keypair::PUBLIC_KEY_ENCODED_LEN);

/// A passport envelope: base64url, version 1, a ciphertext whose length is a size bucket
/// (512 B to 64 KiB). Returns the key version it states.
pub fn check_passport_envelope(envelope: &str) -> Result<SealedInfo, ShapeError> {
    passport::check(envelope)
}

/// A sealed note: as a passport envelope, with buckets up to 1 MiB.
pub fn check_sealed_note(sealed: &str) -> Result<SealedInfo, ShapeError> {
    note::check(sealed)
}

/// A key envelope: base64url of exactly 93 bytes, version 1, an ephemeral public key that is
/// not a low-order point.
pub fn check_key_envelope(envelope: &str) -> Result<KeyEnvelopeInfo, ShapeError> {
    key_envelope::check(envelope)
}

/// A key chain link (see [`crate::key_chain`]): base64url of exactly 32 bytes.
pub fn check_key_chain_link(link: &str) -> Result<(), ShapeError> {
    crate::key_chain::check_link(link).map(|_| ())
}

/// What a public key's check reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The fingerprint to store beside it and show to users.
    pub fingerprint: Fingerprint,
}

/// A public key: base64url of `version 1 | 32 bytes`, not a low-order point.
pub fn check_public_key(public_key: &str) -> Result<PublicKeyInfo, ShapeError> {
    let key = PublicKey::parse(public_key)?;
    Ok(PublicKeyInfo {
        fingerprint: key.fingerprint(),
    })
}

/// What a blind-index token's check reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlindIndexInfo {
    /// The field it indexes (compare with the column it is stored in).
    pub field: BlindIndexField,
    /// The institution key version it was computed under.
    pub key_version: u32,
    /// Its length in bits.
    pub bits: BlindIndexBits,
}

/// A blind-index token: lowercase hex, version 1, a known field, 1–64 bits, the matching
/// number of value bytes, zero bits past the length.
pub fn check_blind_index(token: &str) -> Result<BlindIndexInfo, ShapeError> {
    let index = BlindIndex::parse(token)?;
    Ok(BlindIndexInfo {
        field: index.field(),
        key_version: index.key_version(),
        bits: index.bits(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_constants_match_real_values() {
        let pair = crate::UserKeyPair::generate().unwrap();
        assert_eq!(pair.public_key().encode().len(), PUBLIC_KEY_CHARS);
        let key = crate::InstitutionKey::generate(1).unwrap();
        assert_eq!(
            key.wrap_for(pair.public_key(), 1, 1).unwrap().len(),
            KEY_ENVELOPE_CHARS
        );
        let p = Pseudonym::generate().unwrap();
        let mut big = crate::Passport::new("Иванов", "Иван", "1950-01-01", crate::Sex::Male);
        big.notes = Some("ж".repeat(30_000));
        assert_eq!(
            key.seal_passport(&big, &p, 1).unwrap().len(),
            MAX_PASSPORT_ENVELOPE_CHARS
        );
    }
}
