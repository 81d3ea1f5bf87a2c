//! Sealed notes: free text (e.g. an observation's notes) sealed under the institution key and
//! bound to a purpose, a patient, an institution, a key version and a record.

use crate::aead::{self, NONCE_LEN, SealedInfo};
use crate::encoding::Binding;
use crate::padding::MAX_NOTE_PADDED;
use crate::random::random_array;
use crate::{CryptoError, Format, InstitutionKey, Pseudonym, ShapeError};

/// Domain-separation label at the start of a note's associated data.
pub const NOTE_DOMAIN: &str = "palreg/note/v1";
/// Version byte of sealed notes.
pub const NOTE_VERSION: u8 = aead::SEALED_VERSION;
/// Largest padded note (the largest size bucket), in bytes.
pub const MAX_NOTE_PADDED_LEN: usize = MAX_NOTE_PADDED;
/// Longest purpose label, in bytes.
pub const MAX_PURPOSE_LEN: usize = 64;
/// Longest record id, in bytes.
pub const MAX_RECORD_ID_LEN: usize = 128;

/// What a note is bound to. Opening with any other value fails.
#[derive(Debug, Clone, Copy)]
pub struct NoteBinding<'a> {
    /// What kind of note this is, a constant of the caller such as `"observation"`:
    /// 1–64 characters of `a-z`, `0-9`, `_`, `-`, `.`.
    pub purpose: &'a str,
    /// The patient.
    pub pseudonym: &'a Pseudonym,
    /// The institution.
    pub institution_id: i64,
    /// The record the note belongs to, known before sealing (e.g. a client-generated UUID,
    /// or a server id in decimal): 1–128 bytes.
    pub record_id: &'a str,
}

impl NoteBinding<'_> {
    fn aad(&self, key_version: u32) -> Result<Binding, CryptoError> {
        let purpose_ok = (1..=MAX_PURPOSE_LEN).contains(&self.purpose.len())
            && self
                .purpose
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.".contains(&c));
        if !purpose_ok {
            return Err(CryptoError::InvalidBinding(
                "purpose must be 1-64 characters of a-z 0-9 _ - .",
            ));
        }
        if !(1..=MAX_RECORD_ID_LEN).contains(&self.record_id.len()) {
            return Err(CryptoError::InvalidBinding("record id must be 1-128 bytes"));
        }
        let mut aad = Binding::new(NOTE_DOMAIN);
        aad.bytes(self.purpose.as_bytes())
            .bytes(self.pseudonym.as_str().as_bytes())
            .i64(self.institution_id)
            .u32(key_version)
            .bytes(self.record_id.as_bytes());
        Ok(aad)
    }
}

impl InstitutionKey {
    /// Seals a UTF-8 text, padded to a size bucket (512 B … 1 MiB), bound to `binding`.
    pub fn seal_note(&self, text: &str, binding: &NoteBinding<'_>) -> Result<String, CryptoError> {
        self.seal_note_with_nonce(text, binding, &random_array()?)
    }

    pub(crate) fn seal_note_with_nonce(
        &self,
        text: &str,
        binding: &NoteBinding<'_>,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<String, CryptoError> {
        let aad = binding.aad(self.version())?;
        aead::seal(
            self,
            text.as_bytes(),
            MAX_NOTE_PADDED,
            aad.as_slice(),
            nonce,
        )
    }

    /// Opens a sealed note bound to `binding`.
    pub fn open_note(
        &self,
        sealed: &str,
        binding: &NoteBinding<'_>,
    ) -> Result<String, CryptoError> {
        let aad = binding.aad(self.version())?;
        aead::open(
            self,
            sealed,
            Format::Note,
            MAX_NOTE_PADDED,
            aad.as_slice(),
            |text| {
                std::str::from_utf8(text)
                    .map(str::to_owned)
                    .map_err(|_| CryptoError::InvalidPadding)
            },
        )
    }
}

/// Checks a sealed note's structure without a key (see [`crate::shape`]).
pub(crate) fn check(sealed: &str) -> Result<SealedInfo, ShapeError> {
    aead::parse_sealed(sealed, Format::Note, MAX_NOTE_PADDED).map(|(info, _)| info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn round_trip_and_binding() {
        let key = InstitutionKey::from_bytes(2, Zeroizing::new([1; 32]));
        let p = Pseudonym::parse("ZZZZZZZZZZZZZZZZ").unwrap();
        let b = NoteBinding {
            purpose: "observation",
            pseudonym: &p,
            institution_id: 5,
            record_id: "r-1",
        };
        let sealed = key.seal_note("Боли уменьшились.", &b).unwrap();
        assert_eq!(check(&sealed).unwrap().key_version, 2);
        assert_eq!(key.open_note(&sealed, &b).unwrap(), "Боли уменьшились.");
        for other in [
            NoteBinding {
                record_id: "r-2",
                ..b
            },
            NoteBinding {
                purpose: "need",
                ..b
            },
            NoteBinding {
                institution_id: 6,
                ..b
            },
        ] {
            assert_eq!(
                key.open_note(&sealed, &other),
                Err(CryptoError::DecryptionFailed)
            );
        }
        // A note is no passport, and a passport is no note.
        assert!(key.open_passport(&sealed, &p, 5).is_err());
    }

    #[test]
    fn every_flipped_byte_fails() {
        let key = InstitutionKey::from_bytes(2, Zeroizing::new([1; 32]));
        let p = Pseudonym::parse("ZZZZZZZZZZZZZZZZ").unwrap();
        let b = NoteBinding {
            purpose: "observation",
            pseudonym: &p,
            institution_id: 5,
            record_id: "r-1",
        };
        let sealed = key.seal_note("текст", &b).unwrap();
        let bytes = crate::encoding::b64_decode(&sealed, Format::Note, 1 << 20).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x40;
            assert!(
                key.open_note(&crate::encoding::b64_encode(&t), &b).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn bad_bindings_are_refused() {
        let key = InstitutionKey::from_bytes(2, Zeroizing::new([1; 32]));
        let p = Pseudonym::parse("ZZZZZZZZZZZZZZZZ").unwrap();
        for (purpose, record_id) in [("", "1"), ("Observation", "1"), ("observation", "")] {
            let b = NoteBinding {
                purpose,
                pseudonym: &p,
                institution_id: 5,
                record_id,
            };
            assert!(matches!(
                key.seal_note("x", &b),
                Err(CryptoError::InvalidBinding(_))
            ));
        }
    }
}
