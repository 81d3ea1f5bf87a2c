//! The sealed-envelope layout shared by passports and notes, on top of AES-256-GCM:
//! `version(1) | key_version(u32 BE) | nonce(12) | ciphertext | tag(16)`.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::{Zeroize, Zeroizing};

use crate::encoding::{b64_decode, b64_encode};
use crate::padding;
use crate::{CryptoError, Format, InstitutionKey, ShapeError};

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// `version | key_version | nonce`.
pub(crate) const SEALED_HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// The version byte of passport envelopes and sealed notes.
pub(crate) const SEALED_VERSION: u8 = 1;

/// Encrypts `plaintext` in place behind `header`, returning `header | ciphertext | tag`.
pub(crate) fn encrypt_after_header(
    cipher: &Aes256Gcm,
    header: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(header.len() + plaintext.len() + TAG_LEN);
    out.extend_from_slice(header);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut out[header.len()..]).into())
        // Only reachable for plaintexts beyond GCM's 64 GiB limit, which padding already refuses.
        .map_err(|_| CryptoError::TooLarge {
            max: padding::MAX_NOTE_PADDED,
        })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts `ciphertext | tag` in place; on success the returned range of `buf` holds the
/// plaintext.
pub(crate) fn decrypt_in_place(
    cipher: &Aes256Gcm,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<usize, CryptoError> {
    let ct_len = buf
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(CryptoError::DecryptionFailed)?;
    let (ct, tag) = buf.split_at_mut(ct_len);
    let tag = Tag::try_from(&*tag).map_err(|_| CryptoError::DecryptionFailed)?;
    let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::DecryptionFailed)?;
    cipher
        .decrypt_inout_detached(&nonce, aad, ct.into(), &tag)
        .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(ct_len)
}

/// What the header of a sealed envelope says, checked without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedInfo {
    /// The institution key version the envelope was sealed under.
    pub key_version: u32,
    /// Length of the padded plaintext (the size bucket), in bytes.
    pub padded_len: usize,
}

/// Decodes a sealed envelope and checks its structure: version, and a ciphertext whose length
/// is a padding bucket of at most `max_padded` bytes (plus the tag).
pub(crate) fn parse_sealed(
    text: &str,
    format: Format,
    max_padded: usize,
) -> Result<(SealedInfo, Vec<u8>), ShapeError> {
    let bytes = decode(text, format, max_padded)?;
    check_sealed(&bytes, format, max_padded).map(|info| (info, bytes))
}

/// Checks the structure of a sealed envelope's bytes (its base64url already decoded), as
/// [`parse_sealed`] does.
fn check_sealed(bytes: &[u8], format: Format, max_padded: usize) -> Result<SealedInfo, ShapeError> {
    let version = *bytes.first().ok_or(ShapeError::InvalidLength(format))?;
    if version != SEALED_VERSION {
        return Err(ShapeError::UnsupportedVersion { format, version });
    }
    let padded_len = bytes
        .len()
        .checked_sub(SEALED_HEADER_LEN + TAG_LEN)
        .filter(|&n| padding::is_bucket(n, max_padded))
        .ok_or(ShapeError::InvalidLength(format))?;
    let key_version = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok(SealedInfo {
        key_version,
        padded_len,
    })
}

/// Seals a payload of exactly `payload_len` bytes that `write_payload` appends to the buffer
/// it is given: the buffer is allocated once at its final size (header, length prefix, bucket,
/// tag), so no reallocation leaves a plaintext copy behind, and it is encrypted in place.
pub(crate) fn seal_with(
    key: &InstitutionKey,
    payload_len: usize,
    max_padded: usize,
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
    write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), CryptoError>,
) -> Result<String, CryptoError> {
    let bucket = padding::bucket_for(payload_len, max_padded)?;
    let prefix =
        u32::try_from(payload_len).map_err(|_| CryptoError::TooLarge { max: max_padded })?;
    let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_HEADER_LEN + bucket + TAG_LEN));
    buf.push(SEALED_VERSION);
    buf.extend_from_slice(&key.version().to_be_bytes());
    buf.extend_from_slice(nonce);
    buf.extend_from_slice(&prefix.to_be_bytes());
    write_payload(&mut buf)?;
    if buf.len() != SEALED_HEADER_LEN + padding::LEN_PREFIX + payload_len {
        return Err(CryptoError::InvalidPassport);
    }
    buf.resize(SEALED_HEADER_LEN + bucket, 0);
    let tag = key
        .cipher()
        .encrypt_inout_detached(
            &Nonce::from(*nonce),
            aad,
            (&mut buf[SEALED_HEADER_LEN..]).into(),
        )
        .map_err(|_| CryptoError::TooLarge { max: max_padded })?;
    buf.extend_from_slice(&tag);
    Ok(b64_encode(&buf))
}

/// Pads and seals `payload` under `key`; `aad` is computed from the key's version.
pub(crate) fn seal(
    key: &InstitutionKey,
    payload: &[u8],
    max_padded: usize,
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<String, CryptoError> {
    seal_with(key, payload.len(), max_padded, aad, nonce, |buf| {
        buf.extend_from_slice(payload);
        Ok(())
    })
}

/// Opens a sealed envelope, strips its padding and hands the payload to `use_payload`; the
/// plaintext is zeroized afterwards. `aad` must be built for `key.version()`.
pub(crate) fn open<T>(
    key: &InstitutionKey,
    text: &str,
    format: Format,
    max_padded: usize,
    aad: &[u8],
    use_payload: impl FnOnce(&[u8]) -> Result<T, CryptoError>,
) -> Result<T, CryptoError> {
    let mut bytes = decode(text, format, max_padded)?;
    open_in_place(key, &mut bytes, format, max_padded, aad, use_payload)
}

/// The bytes of a sealed envelope's text (strict base64url), at most as long as a sealed
/// bucket of `max_padded` bytes; their structure is checked when they are opened.
pub(crate) fn decode(text: &str, format: Format, max_padded: usize) -> Result<Vec<u8>, ShapeError> {
    b64_decode(text, format, SEALED_HEADER_LEN + max_padded + TAG_LEN)
}

/// As [`open`], for the envelope's bytes (its base64url already decoded), decrypted in place:
/// on success `sealed` holds no plaintext afterwards, only zeros past the header.
pub(crate) fn open_in_place<T>(
    key: &InstitutionKey,
    sealed: &mut [u8],
    format: Format,
    max_padded: usize,
    aad: &[u8],
    use_payload: impl FnOnce(&[u8]) -> Result<T, CryptoError>,
) -> Result<T, CryptoError> {
    let info = check_sealed(sealed, format, max_padded)?;
    if info.key_version != key.version() {
        return Err(CryptoError::KeyVersionMismatch {
            expected: key.version(),
            found: info.key_version,
        });
    }
    let (header, body) = sealed.split_at_mut(SEALED_HEADER_LEN);
    // On failure aes-gcm leaves the ciphertext untouched: nothing to clear.
    let pt_len = decrypt_in_place(key.cipher(), &header[5..], aad, body)?;
    let plaintext = &mut body[..pt_len];
    let (result, used) = match padding::unpad(plaintext) {
        Ok(payload) => (use_payload(payload), padding::LEN_PREFIX + payload.len()),
        Err(e) => (Err(e), plaintext.len()),
    };
    // Past the payload there are only zeros.
    plaintext[..used].zeroize();
    result
}
