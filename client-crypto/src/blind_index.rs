//! Blind indexes: truncated HMACs of normalized values under per-field keys derived from the
//! institution key, so the server can find candidate records by equality without learning the
//! values. Truncation is deliberate: each index value should match several patients (see
//! [`recommend_bits`]); the client decrypts the candidates and drops the false positives.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding::Binding;
use crate::{CryptoError, Format, InstitutionKey, ShapeError, normalize};

/// Version byte of blind-index tokens.
pub const BLIND_INDEX_VERSION: u8 = 1;
/// Domain-separation label at the start of the HKDF info of the per-field keys.
pub const BLIND_INDEX_DOMAIN: &str = "palreg/blind-index/v1";
/// `version | field | key_version(4) | bits`.
const TOKEN_HEADER_LEN: usize = 7;
/// Longest token in characters (64 bits).
pub const MAX_BLIND_INDEX_TOKEN_CHARS: usize = 2 * (TOKEN_HEADER_LEN + 8);

/// The fields that have a blind index. Each has its own key, a one-byte id in tokens and a
/// label in the key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlindIndexField {
    /// Surname (id 1, label `surname`).
    Surname = 1,
    /// First name (id 2, label `first_name`).
    FirstName = 2,
    /// Patronymic (id 3, label `patronymic`).
    Patronymic = 3,
    /// Date of birth (id 4, label `date_of_birth`).
    DateOfBirth = 4,
    /// SNILS (id 5, label `snils`).
    Snils = 5,
    /// Insurance policy number (id 6, label `policy_number`).
    PolicyNumber = 6,
    /// Phone number (id 7, label `phone`).
    Phone = 7,
    /// Compound: surname and year of birth (id 8, label `surname_birth_year`). Retired: where
    /// the year of birth is stored in clear beside the token (as palreg's records do), equal
    /// tokens of one year tell equal surnames. The palreg server refuses it.
    SurnameBirthYear = 8,
}

impl BlindIndexField {
    /// Every field, in id order.
    pub const ALL: [BlindIndexField; 8] = [
        BlindIndexField::Surname,
        BlindIndexField::FirstName,
        BlindIndexField::Patronymic,
        BlindIndexField::DateOfBirth,
        BlindIndexField::Snils,
        BlindIndexField::PolicyNumber,
        BlindIndexField::Phone,
        BlindIndexField::SurnameBirthYear,
    ];

    /// The id byte used in tokens.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The label used in key derivation and in the WASM API.
    pub fn label(self) -> &'static str {
        match self {
            BlindIndexField::Surname => "surname",
            BlindIndexField::FirstName => "first_name",
            BlindIndexField::Patronymic => "patronymic",
            BlindIndexField::DateOfBirth => "date_of_birth",
            BlindIndexField::Snils => "snils",
            BlindIndexField::PolicyNumber => "policy_number",
            BlindIndexField::Phone => "phone",
            BlindIndexField::SurnameBirthYear => "surname_birth_year",
        }
    }

    /// The field with this id byte.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The field with this label.
    pub fn from_label(label: &str) -> Result<Self, CryptoError> {
        Self::ALL
            .into_iter()
            .find(|f| f.label() == label)
            .ok_or(CryptoError::InvalidInput {
                field: "blind index field",
                reason: "unknown field",
            })
    }

    /// The length of this field's tokens when an institution's blind indexes are `bits` long.
    ///
    /// The date of birth's is [`BIRTH_YEAR_BITS`] shorter (at least 1 bit): a register keeps
    /// the year of birth in clear beside the token, and the year splits every token value
    /// among some 64 years of birth. At the full length, equal tokens of one year would all but
    /// name equal dates; shorter by 6 bits, a value still matches about as many patients of
    /// one year as a surname's matches of the whole register. A search by date of birth sends
    /// the token with the year as a server filter and gets as few candidates as before.
    /// Every other field keeps `bits`.
    pub fn index_bits(self, bits: BlindIndexBits) -> BlindIndexBits {
        match self {
            BlindIndexField::DateOfBirth => {
                BlindIndexBits(bits.get().saturating_sub(BIRTH_YEAR_BITS).max(1))
            }
            _ => bits,
        }
    }

    pub(crate) fn slot(self) -> usize {
        usize::from(self.id() - 1)
    }
}

/// How much shorter a date of birth's token is than the institution's length
/// ([`BlindIndexField::index_bits`]): 2^6 = 64, about the number of years of birth among the
/// patients of a palliative-care register.
pub const BIRTH_YEAR_BITS: u8 = 6;

impl fmt::Display for BlindIndexField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A blind-index length in bits, 1 to 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlindIndexBits(u8);

impl BlindIndexBits {
    /// Checks `1 <= bits <= 64`.
    pub fn new(bits: u8) -> Result<Self, ShapeError> {
        if (1..=64).contains(&bits) {
            Ok(BlindIndexBits(bits))
        } else {
            Err(ShapeError::InvalidBits(bits))
        }
    }

    /// The number of bits.
    pub fn get(self) -> u8 {
        self.0
    }

    fn byte_len(self) -> usize {
        usize::from(self.0).div_ceil(8)
    }
}

/// One blind-index value. What the server stores and compares is its token
/// ([`BlindIndex::to_token`]): lowercase hex of
/// `version(1) | field id(1) | key_version(u32 BE) | bits(1) | ceil(bits/8) bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlindIndex {
    field: BlindIndexField,
    key_version: u32,
    bits: BlindIndexBits,
    value: u64,
}

impl BlindIndex {
    /// The field.
    pub fn field(&self) -> BlindIndexField {
        self.field
    }

    /// The version of the institution key it was computed under.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    /// Its length in bits.
    pub fn bits(&self) -> BlindIndexBits {
        self.bits
    }

    /// The truncated HMAC as an integer: its first `bits` bits, big-endian, right-aligned
    /// (so `0 <= value < 2^bits`).
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The token the server stores and compares by equality.
    pub fn to_token(&self) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_HEADER_LEN + 8);
        bytes.push(BLIND_INDEX_VERSION);
        bytes.push(self.field.id());
        bytes.extend_from_slice(&self.key_version.to_be_bytes());
        bytes.push(self.bits.get());
        let n = self.bits.byte_len();
        let left_aligned = self.value << (n * 8 - usize::from(self.bits.get()));
        bytes.extend_from_slice(&left_aligned.to_be_bytes()[8 - n..]);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses and checks a token without any key.
    pub fn parse(token: &str) -> Result<Self, ShapeError> {
        const F: Format = Format::BlindIndex;
        if token.len() > MAX_BLIND_INDEX_TOKEN_CHARS || token.len() < 2 * (TOKEN_HEADER_LEN + 1) {
            return Err(ShapeError::InvalidLength(F));
        }
        let bytes = decode_lower_hex(token).ok_or(ShapeError::InvalidEncoding(F))?;
        if bytes[0] != BLIND_INDEX_VERSION {
            return Err(ShapeError::UnsupportedVersion {
                format: F,
                version: bytes[0],
            });
        }
        let field = BlindIndexField::from_id(bytes[1]).ok_or(ShapeError::UnknownField(bytes[1]))?;
        let key_version = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let bits = BlindIndexBits::new(bytes[6])?;
        let value_bytes = &bytes[TOKEN_HEADER_LEN..];
        if value_bytes.len() != bits.byte_len() {
            return Err(ShapeError::InvalidLength(F));
        }
        let left_aligned = value_bytes
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let spare = bits.byte_len() * 8 - usize::from(bits.get());
        if left_aligned & ((1u64 << spare) - 1) != 0 {
            return Err(ShapeError::NonZeroPaddingBits);
        }
        Ok(BlindIndex {
            field,
            key_version,
            bits,
            value: left_aligned >> spare,
        })
    }
}

impl fmt::Display for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let raw = text.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    raw.chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// The keyed HMAC-SHA256 state of one field: key = HKDF-SHA256(no salt, IKM = institution
/// key, info = lp(domain) | lp(label), 32 bytes).
pub(crate) fn derive_key(institution_key: &[u8; 32], field: BlindIndexField) -> Hmac<Sha256> {
    let mut info = Binding::new(BLIND_INDEX_DOMAIN);
    info.bytes(field.label().as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    let expanded = Hkdf::<Sha256>::new(None, institution_key).expand(info.as_slice(), &mut *key);
    debug_assert!(
        expanded.is_ok(),
        "32 bytes is a valid HKDF-SHA256 output length"
    );
    <Hmac<Sha256> as KeyInit>::new_from_slice(&*key).expect("HMAC accepts keys of any length")
}

impl InstitutionKey {
    /// Normalizes `value` for `field` (see [`crate::normalize`]) and computes its blind index.
    /// For the compound field use [`InstitutionKey::blind_index_surname_birth_year`].
    pub fn blind_index(
        &self,
        field: BlindIndexField,
        value: &str,
        bits: BlindIndexBits,
    ) -> Result<BlindIndex, CryptoError> {
        let normalized = Zeroizing::new(normalize::normalize(field, value)?);
        Ok(self.blind_index_normalized(field, &[&normalized], bits))
    }

    /// The blind indexes palreg's clients store with a passport: surname and date of birth,
    /// and SNILS and policy number when it has them, each at its field's length when the
    /// institution's indexes are `bits` long ([`BlindIndexField::index_bits`]).
    pub fn passport_blind_indexes(
        &self,
        passport: &crate::Passport,
        bits: BlindIndexBits,
    ) -> Result<Vec<BlindIndex>, CryptoError> {
        [
            (BlindIndexField::Surname, Some(&passport.surname)),
            (BlindIndexField::DateOfBirth, Some(&passport.date_of_birth)),
            (BlindIndexField::Snils, passport.snils.as_ref()),
            (
                BlindIndexField::PolicyNumber,
                passport.policy_number.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(field, value)| Some((field, value?)))
        .map(|(field, value)| self.blind_index(field, value, field.index_bits(bits)))
        .collect()
    }

    /// The compound index of a surname and a year of birth (`birth` is a year or a date).
    /// Retired (see [`BlindIndexField::SurnameBirthYear`]): kept for the format's vectors.
    pub fn blind_index_surname_birth_year(
        &self,
        surname: &str,
        birth: &str,
        bits: BlindIndexBits,
    ) -> Result<BlindIndex, CryptoError> {
        let surname = Zeroizing::new(normalize::name(surname)?);
        let year = normalize::birth_year(birth)?;
        Ok(
            self.blind_index_normalized(
                BlindIndexField::SurnameBirthYear,
                &[&surname, &year],
                bits,
            ),
        )
    }

    /// The blind index of values that are already normalized: HMAC over
    /// `lp(part_1) | lp(part_2) | …` (`lp` = u32 BE byte length, then the UTF-8 bytes),
    /// truncated to `bits`.
    pub fn blind_index_normalized(
        &self,
        field: BlindIndexField,
        normalized_parts: &[&str],
        bits: BlindIndexBits,
    ) -> BlindIndex {
        let mut mac = self.blind_key(field).clone();
        for part in normalized_parts {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let value = u64::from_be_bytes(first) >> (64 - u32::from(bits.get()));
        BlindIndex {
            field,
            key_version: self.version(),
            bits,
            value,
        }
    }
}

/// A range of safe blind-index lengths in bits, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitRange {
    /// The shortest safe length: fewer bits gives more than sqrt(R) matches per value.
    pub min: u8,
    /// The longest safe length: more bits gives fewer than 2 matches per value.
    pub max: u8,
}

impl BitRange {
    /// The recommended length: the longest safe one (fewest false positives).
    pub fn recommended(&self) -> u8 {
        self.max
    }
}

/// Expected number of patients sharing one index value, C = R / 2^total_bits.
pub fn coincidences(expected_patients: u64, total_bits: u32) -> f64 {
    expected_patients as f64 / 2f64.powi(i32::try_from(total_bits).unwrap_or(i32::MAX))
}

/// CipherSweet's rule: the bit length L of a new blind index such that every index value is
/// expected to match C patients with `2 <= C < sqrt(R)`, where R is the expected number of
/// patients (per institution: each institution has its own keys) and
/// `C = R / 2^(L + sum of existing_bits)`. `existing_bits` lists the lengths of other blind
/// indexes stored on the same rows, since an attacker can intersect them.
///
/// So `2^(T+1) <= R` and `2^(2T) > R` for the total T; returns
/// [`CryptoError::NoSafeBitLength`] when no L >= 1 satisfies both.
pub fn recommend_bits(
    expected_patients: u64,
    existing_bits: &[u8],
) -> Result<BitRange, CryptoError> {
    let r = u128::from(expected_patients);
    let existing: u32 = existing_bits.iter().map(|&b| u32::from(b)).sum();
    // Largest total T with 2^(T+1) <= R, i.e. C >= 2.
    let t_max = (0u32..=127).take_while(|&t| (1u128 << (t + 1)) <= r).last();
    // Smallest total T with 2^(2T) > R, i.e. C < sqrt(R).
    let t_min = (0u32..=63).find(|&t| (1u128 << (2 * t)) > r);
    let (Some(t_max), Some(t_min)) = (t_max, t_min) else {
        return Err(CryptoError::NoSafeBitLength);
    };
    let max = t_max.saturating_sub(existing).min(64);
    let min = t_min.saturating_sub(existing).max(1);
    if t_max < existing + 1 || min > max {
        return Err(CryptoError::NoSafeBitLength);
    }
    // Both are at most 64 here.
    Ok(BitRange {
        min: min as u8,
        max: max as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn bits(n: u8) -> BlindIndexBits {
        BlindIndexBits::new(n).unwrap()
    }

    #[test]
    fn the_date_of_birth_is_indexed_shorter_by_the_year_it_sits_beside() {
        use BlindIndexField::*;
        for field in BlindIndexField::ALL {
            for n in 1..=64 {
                let expected = match (field, n) {
                    (DateOfBirth, 1..=7) => 1,
                    (DateOfBirth, _) => n - BIRTH_YEAR_BITS,
                    _ => n,
                };
                assert_eq!(field.index_bits(bits(n)), bits(expected), "{field} {n}");
            }
        }
        // The web client's and palreg-client's default length.
        assert_eq!(DateOfBirth.index_bits(bits(12)).get(), 6);
    }

    #[test]
    fn a_passport_is_indexed_by_its_searchable_fields_each_at_its_length() {
        use crate::{Passport, Sex};
        let key = InstitutionKey::from_bytes(2, Zeroizing::new([5; 32]));
        let mut p = Passport::new("Иванова", "Анна", "1950-02-01", Sex::Female);
        let of = |p: &Passport| -> Vec<(BlindIndexField, u8)> {
            let indexes = key.passport_blind_indexes(p, bits(12)).unwrap();
            indexes
                .iter()
                .map(|i| (i.field(), i.bits().get()))
                .collect()
        };
        use BlindIndexField::*;
        assert_eq!(of(&p), [(Surname, 12), (DateOfBirth, 6)]);
        p.snils = Some("112-233-445 95".into());
        p.policy_number = Some("1234567890123456".into());
        p.phone = Some("+7 900 000-00-00".into());
        assert_eq!(
            of(&p),
            [
                (Surname, 12),
                (DateOfBirth, 6),
                (Snils, 12),
                (PolicyNumber, 12)
            ]
        );
        let dob = key.passport_blind_indexes(&p, bits(12)).unwrap()[1];
        assert_eq!(
            dob,
            key.blind_index(DateOfBirth, "01.02.1950", bits(6)).unwrap()
        );
    }

    #[test]
    fn token_round_trip_for_every_length() {
        let key = InstitutionKey::from_bytes(9, Zeroizing::new([3; 32]));
        for n in 1..=64 {
            let idx = key
                .blind_index(BlindIndexField::Surname, "Иванов", bits(n))
                .unwrap();
            assert!(n == 64 || idx.value() < (1u64 << n));
            let token = idx.to_token();
            assert_eq!(token.len(), 2 * (7 + usize::from(n).div_ceil(8)));
            assert_eq!(BlindIndex::parse(&token).unwrap(), idx);
        }
    }

    #[test]
    fn equal_after_normalization_and_truncation_is_a_prefix() {
        let key = InstitutionKey::from_bytes(9, Zeroizing::new([3; 32]));
        let a = key
            .blind_index(BlindIndexField::Surname, " ЁЛКИН ", bits(20))
            .unwrap();
        let b = key
            .blind_index(BlindIndexField::Surname, "елкин", bits(20))
            .unwrap();
        assert_eq!(a, b);
        let short = key
            .blind_index(BlindIndexField::Surname, "елкин", bits(12))
            .unwrap();
        assert_eq!(short.value(), a.value() >> 8);
        // Another field, another key.
        let first = key
            .blind_index(BlindIndexField::FirstName, "елкин", bits(64))
            .unwrap();
        let sur = key
            .blind_index(BlindIndexField::Surname, "елкин", bits(64))
            .unwrap();
        assert_ne!(first.value(), sur.value());
        let compound = key
            .blind_index_surname_birth_year("Ёлкин", "01.02.1950", bits(16))
            .unwrap();
        assert_eq!(
            compound,
            key.blind_index_surname_birth_year("елкин", "1950", bits(16))
                .unwrap()
        );
    }

    #[test]
    fn token_shape_errors() {
        // version 01 | field 01 | key version 00000000 | bits | value bytes
        assert_eq!(BlindIndex::parse("01010000000003e0").unwrap().value(), 7);
        assert_eq!(
            BlindIndex::parse("01010000000010ab"),
            Err(ShapeError::InvalidLength(Format::BlindIndex))
        );
        assert_eq!(
            BlindIndex::parse("01010000000003f0"),
            Err(ShapeError::NonZeroPaddingBits)
        );
        assert_eq!(
            BlindIndex::parse("01010000000003E0"),
            Err(ShapeError::InvalidEncoding(Format::BlindIndex))
        );
        assert_eq!(
            BlindIndex::parse("01090000000003e0"),
            Err(ShapeError::UnknownField(9))
        );
        assert_eq!(
            BlindIndex::parse("0101000000000000"),
            Err(ShapeError::InvalidBits(0))
        );
        assert_eq!(
            BlindIndex::parse("0101000000004100"),
            Err(ShapeError::InvalidBits(65))
        );
        assert!(matches!(
            BlindIndex::parse("02010000000003e0"),
            Err(ShapeError::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn bit_recommendations_follow_the_rule() {
        assert_eq!(
            recommend_bits(50_000, &[]).unwrap(),
            BitRange { min: 8, max: 14 }
        );
        assert_eq!(
            recommend_bits(50_000, &[4]).unwrap(),
            BitRange { min: 4, max: 10 }
        );
        assert_eq!(recommend_bits(8, &[]).unwrap(), BitRange { min: 2, max: 2 });
        assert_eq!(recommend_bits(4, &[]), Err(CryptoError::NoSafeBitLength));
        assert_eq!(
            recommend_bits(50_000, &[14]),
            Err(CryptoError::NoSafeBitLength)
        );
        for r in [8u64, 10, 100, 1000, 12_345, 1 << 20, (1 << 40) + 12_345] {
            let range = recommend_bits(r, &[]).unwrap();
            for l in [range.min, range.max] {
                let c = coincidences(r, u32::from(l));
                assert!(c >= 2.0 && c < (r as f64).sqrt(), "R={r} L={l} C={c}");
            }
            assert!(coincidences(r, u32::from(range.max) + 1) < 2.0);
            assert!(
                range.min == 1 || coincidences(r, u32::from(range.min) - 1) >= (r as f64).sqrt()
            );
        }
    }
}
