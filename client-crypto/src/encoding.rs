//! Byte-level helpers shared by the formats: base64url without padding (a small strict
//! codec: it is on the hot path of opening passports in WASM), and the unambiguous
//! concatenation used for associated data and HKDF info strings.

use crate::{Format, ShapeError};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xff;
/// Character → 6-bit value, `INVALID` for anything outside the base64url alphabet.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
/// Bit set in the shifted tables for a character outside the alphabet.
const BAD: u32 = 1 << 31;
/// Character → its 6 bits already shifted to position `shift` of a 24-bit group, or `BAD`:
/// four lookups and three ORs decode a group (the hot loop of opening a passport in WASM).
const fn shifted(shift: u32) -> [u32; 256] {
    let mut table = [BAD; 256];
    let mut i = 0;
    while i < 256 {
        if DECODE[i] != INVALID {
            table[i] = (DECODE[i] as u32) << shift;
        }
        i += 1;
    }
    table
}
const D0: [u32; 256] = shifted(18);
const D1: [u32; 256] = shifted(12);
const D2: [u32; 256] = shifted(6);
const D3: [u32; 256] = shifted(0);

/// base64url without padding (RFC 4648, section 5).
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; (bytes.len() * 4).div_ceil(3)];
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    let mut chunks = bytes.chunks_exact(3);
    for (c, dst) in (&mut chunks).zip(out.chunks_exact_mut(4)) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        dst.copy_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    let tail = bytes.len() / 3 * 4;
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out[tail..].copy_from_slice(&[sextet(n, 18), sextet(n, 12)]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out[tail..].copy_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6)]);
        }
        _ => {}
    }
    // Only alphabet characters were written, so this conversion cannot fail.
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes base64url without padding, refusing anything larger than `max_len` decoded bytes
/// before allocating for it, and non-canonical encodings (non-zero bits in the last character
/// beyond the data), so every byte string has exactly one accepted text.
pub(crate) fn b64_decode(
    text: &str,
    format: Format,
    max_len: usize,
) -> Result<Vec<u8>, ShapeError> {
    let raw = text.as_bytes();
    // 4 characters carry 3 bytes; a longer text cannot decode to at most max_len bytes.
    if raw.len() > (max_len * 4).div_ceil(3) {
        return Err(ShapeError::InvalidLength(format));
    }
    let bad_encoding = || ShapeError::InvalidEncoding(format);
    if raw.len() % 4 == 1 {
        return Err(bad_encoding());
    }
    let full = raw.len() / 4;
    let mut out = Vec::with_capacity(full * 3 + 2);
    out.resize(full * 3, 0);
    let mut bad = 0u32;
    for (group, dst) in raw.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let n = D0[usize::from(group[0])]
            | D1[usize::from(group[1])]
            | D2[usize::from(group[2])]
            | D3[usize::from(group[3])];
        bad |= n;
        dst.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if bad & BAD != 0 {
        return Err(bad_encoding());
    }
    let rest = &raw[full * 4..];
    let mut v = [0u8; 3];
    for (value, &c) in v.iter_mut().zip(rest) {
        *value = DECODE[c as usize];
        if *value & 0xc0 != 0 {
            return Err(bad_encoding());
        }
    }
    match rest.len() {
        2 if v[1] & 0x0f == 0 => out.push((v[0] << 2) | (v[1] >> 4)),
        3 if v[2] & 0x03 == 0 => {
            out.push((v[0] << 2) | (v[1] >> 4));
            out.push((v[1] << 4) | (v[2] >> 2));
        }
        0 => {}
        _ => return Err(bad_encoding()),
    }
    if out.len() > max_len {
        return Err(ShapeError::InvalidLength(format));
    }
    Ok(out)
}

/// Builder of associated data / HKDF info: variable-length fields are prefixed with their
/// length as a big-endian u32, fixed-size integers are big-endian, so no two different
/// bindings produce the same bytes.
pub(crate) struct Binding(Vec<u8>);

impl Binding {
    pub(crate) fn new(domain: &str) -> Self {
        let mut b = Binding(Vec::with_capacity(96));
        b.bytes(domain.as_bytes());
        b
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // Bindings are pseudonyms, labels and record ids checked to be short by their callers.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_unambiguous() {
        let mut a = Binding::new("d");
        a.bytes(b"ab").bytes(b"c");
        let mut b = Binding::new("d");
        b.bytes(b"a").bytes(b"bc");
        assert_ne!(a.as_slice(), b.as_slice());
    }

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn b64_agrees_with_the_base64_crate(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = b64_encode(&bytes);
            prop_assert_eq!(&text, &URL_SAFE_NO_PAD.encode(&bytes));
            prop_assert_eq!(b64_decode(&text, Format::Passport, 200).unwrap(), bytes);
        }

        #[test]
        fn b64_accepts_only_what_the_base64_crate_accepts(text in "[A-Za-z0-9_=+/-]{0,12}") {
            let ours = b64_decode(&text, Format::Passport, 100).ok();
            let theirs = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok();
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn b64_refuses_non_canonical_trailing_bits() {
        assert_eq!(b64_decode("AA", Format::Passport, 10).unwrap(), [0]);
        assert!(b64_decode("AB", Format::Passport, 10).is_err());
        assert!(b64_decode("AAB", Format::Passport, 10).is_err());
        assert!(b64_decode("A", Format::Passport, 10).is_err());
    }

    #[test]
    fn b64_rejects_padding_and_oversize() {
        assert!(b64_decode("AAAA", Format::Passport, 3).is_ok());
        assert_eq!(
            b64_decode("AAAAAA", Format::Passport, 3),
            Err(ShapeError::InvalidLength(Format::Passport))
        );
        assert_eq!(
            b64_decode("AA==", Format::Passport, 3),
            Err(ShapeError::InvalidEncoding(Format::Passport))
        );
        assert_eq!(
            b64_decode("A+/A", Format::Passport, 3),
            Err(ShapeError::InvalidEncoding(Format::Passport))
        );
    }
}
