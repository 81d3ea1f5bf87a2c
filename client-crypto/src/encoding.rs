//! Byte-level helpers shared by the formats: base64url without padding, and the unambiguous
//! concatenation used for associated data and HKDF info strings.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Format, ShapeError};

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding, refusing anything larger than `max_len` decoded bytes
/// before allocating for it.
pub(crate) fn b64_decode(
    text: &str,
    format: Format,
    max_len: usize,
) -> Result<Vec<u8>, ShapeError> {
    // 4 characters carry 3 bytes; a longer text cannot decode to at most max_len bytes.
    if text.len() > max_len.div_ceil(3) * 4 {
        return Err(ShapeError::InvalidLength(format));
    }
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| ShapeError::InvalidEncoding(format))
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
