//! Patient pseudonyms: the only name of a patient the server knows.

use std::fmt;

use crate::CryptoError;
use crate::random::random_array;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 80 random bits written as 16 base32 characters.
pub(crate) const PSEUDONYM_LEN: usize = 16;

/// A patient pseudonym: 16 characters of Crockford base32 (uppercase) encoding 80 random bits.
///
/// Bound into the associated data of the patient's passport and notes, so a sealed passport
/// cannot be moved to another patient's record. Uniqueness is the server's to check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// A fresh random pseudonym.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes: [u8; 10] = random_array()?;
        Ok(Self::from_random_bytes(bytes))
    }

    pub(crate) fn from_random_bytes(bytes: [u8; 10]) -> Self {
        let mut bits = bytes
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        let mut chars = [0u8; PSEUDONYM_LEN];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        Pseudonym(chars.iter().map(|&c| char::from(c)).collect())
    }

    /// Parses a pseudonym. Lowercase letters are accepted and canonicalized to uppercase;
    /// anything else outside the alphabet, or a length other than 16, is refused.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        if text.len() != PSEUDONYM_LEN {
            return Err(CryptoError::InvalidPseudonym);
        }
        let canonical = text.to_ascii_uppercase();
        if canonical.bytes().all(|c| ALPHABET.contains(&c)) {
            Ok(Pseudonym(canonical))
        } else {
            Err(CryptoError::InvalidPseudonym)
        }
    }

    /// The canonical 16-character form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Pseudonyms stay out of logs (style.md): Debug shows only that one is there.
        f.write_str("Pseudonym(..)")
    }
}

impl std::str::FromStr for Pseudonym {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pseudonym::parse(s)
    }
}

impl AsRef<str> for Pseudonym {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pseudonyms_parse_and_differ() {
        let a = Pseudonym::generate().unwrap();
        let b = Pseudonym::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(Pseudonym::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn encoding_is_big_endian_base32() {
        assert_eq!(
            Pseudonym::from_random_bytes([0; 10]).as_str(),
            "0000000000000000"
        );
        assert_eq!(
            Pseudonym::from_random_bytes([0xff; 10]).as_str(),
            "ZZZZZZZZZZZZZZZZ"
        );
        let mut one = [0u8; 10];
        one[9] = 33;
        assert_eq!(
            Pseudonym::from_random_bytes(one).as_str(),
            "0000000000000011"
        );
    }

    #[test]
    fn parse_canonicalizes_case_and_refuses_the_rest() {
        assert_eq!(
            Pseudonym::parse("abcdefghjkmnpqrs").unwrap().as_str(),
            "ABCDEFGHJKMNPQRS"
        );
        for bad in [
            "",
            "ABCDEFGHJKMNPQR",
            "ABCDEFGHJKMNPQRST",
            "ABCDEFGHIKMNPQRS",
            "ABCDEFGHJKMNPQRU",
            "ABCDEFGHJKMNPQR-",
            "АBCDEFGHJKMNPQR",
        ] {
            assert_eq!(
                Pseudonym::parse(bad),
                Err(CryptoError::InvalidPseudonym),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_value() {
        let p = Pseudonym::parse("ABCDEFGHJKMNPQRS").unwrap();
        assert!(!format!("{p:?}").contains("ABCD"));
    }
}
