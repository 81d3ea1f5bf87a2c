#![doc = include_str!("../README.md")]

use client_crypto as cc;
use wasm_bindgen::prelude::*;

#[cfg(feature = "bench-baseline")]
pub mod baseline;

#[cfg(test)]
mod tests {
    use super::ascii_json;

    #[test]
    fn ascii_json_is_the_same_json() {
        let json = r#"{"surname":"Ёлкина","notes":"😀 \"q\"","n":1}"#;
        let ascii = ascii_json(json.as_bytes()).unwrap();
        assert!(ascii.is_ascii());
        assert_eq!(
            ascii,
            r#"{"surname":"\u0401\u043b\u043a\u0438\u043d\u0430","notes":"\ud83d\ude00 \"q\"","n":1}"#
        );
        // One character of each UTF-8 length.
        assert_eq!(
            ascii_json("aé€😀".as_bytes()).unwrap(),
            r"a\u00e9\u20ac\ud83d\ude00"
        );
    }

    #[test]
    fn ascii_json_refuses_what_is_not_utf8() {
        // Every string the standard library refuses, ascii_json refuses; every one it takes
        // comes out as the same characters.
        let cases: &[&[u8]] = &[
            b"\x80",             // a lone continuation byte
            b"\xc0\xaf",         // overlong '/'
            b"\xc1\xbf",         // overlong
            b"\xd0",             // truncated two-byte sequence
            b"\xd0\x41",         // lead byte, then no continuation
            b"\xe0\x80\xaf",     // overlong three-byte
            b"\xed\xa0\x80",     // a UTF-16 surrogate
            b"\xe2\x82",         // truncated three-byte
            b"\xf4\x90\x80\x80", // beyond U+10FFFF
            b"\xf5\x80\x80\x80", // invalid lead
            b"\xff",
            b"ok \xd0\x81 \xe2\x82\xac \xf0\x9f\x98\x80",
        ];
        // And every string of two bytes, and of three that start with a longer lead.
        let pairs = (0..=0xffffu32).map(|n| n.to_be_bytes()[2..].to_vec());
        let triples = (0xe0..=0xf4u8).flat_map(|lead| {
            (0..=0xffffu16).map(move |n| [[lead].as_slice(), &n.to_be_bytes()].concat())
        });
        let all: Vec<Vec<u8>> = cases
            .iter()
            .map(|c| c.to_vec())
            .chain(pairs)
            .chain(triples)
            .collect();
        for bytes in &all {
            let bytes = bytes.as_slice();
            match std::str::from_utf8(bytes) {
                Err(_) => assert_eq!(ascii_json(bytes), None, "{bytes:x?}"),
                Ok(text) => {
                    let ascii = ascii_json(bytes).unwrap();
                    let expected: String = text
                        .encode_utf16()
                        .map(|u| match char::from_u32(u32::from(u)) {
                            Some(c) if c.is_ascii() => c.to_string(),
                            _ => format!("\\u{u:04x}"),
                        })
                        .collect();
                    assert_eq!(ascii, expected);
                }
            }
        }
    }
}

/// Installs the panic hook, so a panic shows its message in the console instead of
/// "unreachable executed".
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// A JavaScript `Error` whose message is `"<code>: <message>"`.
fn js_error(error: cc::CryptoError) -> JsError {
    JsError::new(&format!("{}: {error}", error.code()))
}

/// The JSON bytes as text with every non-ASCII character written as a `\uXXXX` escape (UTF-16
/// code units, so characters beyond the BMP become a surrogate pair): the same value after
/// `JSON.parse`, and ASCII crosses into JavaScript at a fraction of the cost of UTF-8 — in
/// Node 20 decoding a 1 KiB Cyrillic passport costs about as much as decrypting it, in Chromium
/// about three times as much as the same length of ASCII (measured by bench/wasm). Non-ASCII
/// can only occur inside JSON strings, where escapes are valid. The bytes are checked to be
/// UTF-8 in the same pass: `None` if they are not.
fn ascii_json(json: &[u8]) -> Option<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    fn escape(out: &mut Vec<u8>, unit: u32) {
        let hex = |shift: u32| HEX[((unit >> shift) & 0xf) as usize];
        out.extend_from_slice(&[b'\\', b'u', hex(12), hex(8), hex(4), hex(0)]);
    }
    // Each UTF-8 byte becomes at most 3 output bytes (2 bytes -> one 6-byte escape, 4 bytes ->
    // two), so the buffer never grows.
    let mut out = Vec::with_capacity(json.len() * 3);
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if b < 0x80 {
            out.push(b);
            i += 1;
        } else if let (0xc2..=0xdf, Some(&b1 @ 0x80..=0xbf)) = (b, json.get(i + 1)) {
            // Two-byte sequences (Cyrillic, Latin accents), the common case, checked and
            // decoded inline: a lead byte of C2..DF and a continuation byte are exactly the
            // valid ones.
            escape(&mut out, (u32::from(b & 0x1f) << 6) | u32::from(b1 & 0x3f));
            i += 2;
        } else {
            // Longer sequences, checked by the standard library.
            let len = match b {
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return None,
            };
            let c = std::str::from_utf8(json.get(i..i + len)?)
                .ok()?
                .chars()
                .next()?;
            let mut units = [0u16; 2];
            for &unit in c.encode_utf16(&mut units).iter() {
                escape(&mut out, u32::from(unit));
            }
            i += len;
        }
    }
    // Only ASCII bytes were written.
    String::from_utf8(out).ok()
}

/// [`ascii_json`] for the opening closures of client-crypto.
fn ascii_passport(json: &[u8]) -> Result<String, cc::CryptoError> {
    ascii_json(json).ok_or(cc::CryptoError::InvalidPassport)
}

fn shape_error(error: cc::ShapeError) -> JsError {
    js_error(error.into())
}

/// Ids arrive as JavaScript numbers; anything but a safe integer is refused.
fn id(name: &'static str, value: f64) -> Result<i64, JsError> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.is_finite() && value.fract() == 0.0 && value.abs() <= MAX_SAFE {
        // Exact: a safe integer fits in i64.
        Ok(value as i64)
    } else {
        Err(js_error(cc::CryptoError::InvalidInput {
            field: name,
            reason: "not a safe integer",
        }))
    }
}

fn pseudonym(text: &str) -> Result<cc::Pseudonym, JsError> {
    cc::Pseudonym::parse(text).map_err(js_error)
}

fn bits(n: u8) -> Result<cc::BlindIndexBits, JsError> {
    cc::BlindIndexBits::new(n).map_err(shape_error)
}

/// An institution key held inside WASM memory. JavaScript never sees its bytes.
#[wasm_bindgen]
pub struct InstitutionKey(cc::InstitutionKey);

#[wasm_bindgen]
impl InstitutionKey {
    /// A fresh random institution key with this version.
    pub fn generate(version: u32) -> Result<InstitutionKey, JsError> {
        cc::InstitutionKey::generate(version)
            .map(InstitutionKey)
            .map_err(js_error)
    }

    /// The key's version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> u32 {
        self.0.version()
    }

    /// Seals a passport (its JSON text) for a patient; returns the envelope (base64url).
    #[wasm_bindgen(js_name = sealPassport)]
    pub fn seal_passport(
        &self,
        passport_json: &str,
        pseudonym_text: &str,
        institution_id: f64,
    ) -> Result<String, JsError> {
        let passport = cc::Passport::from_json(passport_json).map_err(js_error)?;
        self.0
            .seal_passport(
                &passport,
                &pseudonym(pseudonym_text)?,
                id("institution_id", institution_id)?,
            )
            .map_err(js_error)
    }

    /// Opens a passport envelope; returns the passport's JSON text (non-ASCII characters as
    /// `\\u` escapes: pass it to `JSON.parse`).
    #[wasm_bindgen(js_name = openPassport)]
    pub fn open_passport(
        &self,
        envelope: &str,
        pseudonym_text: &str,
        institution_id: f64,
    ) -> Result<String, JsError> {
        self.0
            .open_passport_json_with(
                envelope,
                &pseudonym(pseudonym_text)?,
                id("institution_id", institution_id)?,
                ascii_passport,
            )
            .map_err(js_error)
    }

    /// As `openPassport`, for the envelope's bytes: its base64url decoded by the caller, e.g.
    /// `buffer.setFromBase64(envelope, { alphabet: 'base64url' })` into a reused buffer, which
    /// spares copying the text into WASM memory (in Chromium ~1 µs against ~5.5 µs to copy the
    /// text in and decode it here). The bytes are decrypted in a copy inside WASM memory that
    /// holds no plaintext afterwards.
    #[wasm_bindgen(js_name = openPassportBytes)]
    pub fn open_passport_bytes(
        &self,
        mut sealed: Vec<u8>,
        pseudonym_text: &str,
        institution_id: f64,
    ) -> Result<String, JsError> {
        self.0
            .open_passport_bytes_with(
                &mut sealed,
                &pseudonym(pseudonym_text)?,
                id("institution_id", institution_id)?,
                ascii_passport,
            )
            .map_err(js_error)
    }

    /// Seals a free-text note bound to a purpose, patient, institution and record.
    #[wasm_bindgen(js_name = sealNote)]
    pub fn seal_note(
        &self,
        text: &str,
        purpose: &str,
        pseudonym_text: &str,
        institution_id: f64,
        record_id: &str,
    ) -> Result<String, JsError> {
        let p = pseudonym(pseudonym_text)?;
        let binding = cc::NoteBinding {
            purpose,
            pseudonym: &p,
            institution_id: id("institution_id", institution_id)?,
            record_id,
        };
        self.0.seal_note(text, &binding).map_err(js_error)
    }

    /// Opens a sealed note; every bound value must match.
    #[wasm_bindgen(js_name = openNote)]
    pub fn open_note(
        &self,
        sealed: &str,
        purpose: &str,
        pseudonym_text: &str,
        institution_id: f64,
        record_id: &str,
    ) -> Result<String, JsError> {
        let p = pseudonym(pseudonym_text)?;
        let binding = cc::NoteBinding {
            purpose,
            pseudonym: &p,
            institution_id: id("institution_id", institution_id)?,
            record_id,
        };
        self.0.open_note(sealed, &binding).map_err(js_error)
    }

    /// The blind-index token of `value` for `field` (a label such as `"surname"`), `bits` long.
    #[wasm_bindgen(js_name = blindIndex)]
    pub fn blind_index(&self, field: &str, value: &str, bits_len: u8) -> Result<String, JsError> {
        let field = cc::BlindIndexField::from_label(field).map_err(js_error)?;
        let index = self
            .0
            .blind_index(field, value, bits(bits_len)?)
            .map_err(js_error)?;
        Ok(index.to_token())
    }

    /// The blind-index token of `value` for `field` when the institution's blind indexes are
    /// `institution_bits` long: at the field's own length ([`blindIndexBits`]; the date of
    /// birth's is 6 bits shorter). What palreg's clients store and search with.
    #[wasm_bindgen(js_name = indexToken)]
    pub fn index_token(
        &self,
        field: &str,
        value: &str,
        institution_bits: u8,
    ) -> Result<String, JsError> {
        self.blind_index(field, value, blind_index_bits(field, institution_bits)?)
    }

    /// The compound blind-index token of a surname and a year (or date) of birth. Retired:
    /// the palreg server refuses it (see client-crypto's README, field 8).
    #[wasm_bindgen(js_name = blindIndexSurnameBirthYear)]
    pub fn blind_index_surname_birth_year(
        &self,
        surname: &str,
        birth: &str,
        bits_len: u8,
    ) -> Result<String, JsError> {
        let index = self
            .0
            .blind_index_surname_birth_year(surname, birth, bits(bits_len)?)
            .map_err(js_error)?;
        Ok(index.to_token())
    }

    /// Wraps this key to a colleague's public key: the key envelope the server stores.
    #[wasm_bindgen(js_name = wrapFor)]
    pub fn wrap_for(
        &self,
        recipient_public_key: &str,
        recipient_user_id: f64,
        institution_id: f64,
    ) -> Result<String, JsError> {
        let recipient = cc::PublicKey::parse(recipient_public_key).map_err(shape_error)?;
        self.0
            .wrap_for(
                &recipient,
                id("recipient_user_id", recipient_user_id)?,
                id("institution_id", institution_id)?,
            )
            .map_err(js_error)
    }

    /// The link that vouches for `next` (this version + 1), made with this key: stored with
    /// the new version when rotating (client-crypto `key_chain`).
    #[wasm_bindgen(js_name = linkTo)]
    pub fn link_to(&self, next: &InstitutionKey, institution_id: f64) -> Result<String, JsError> {
        self.0
            .link_to(&next.0, id("institution_id", institution_id)?)
            .map_err(js_error)
    }

    /// Whether `link` was made with this key for `next` (this version + 1). A malformed link
    /// throws; a well-formed one that does not verify gives false.
    #[wasm_bindgen(js_name = verifyLink)]
    pub fn verify_link(
        &self,
        next: &InstitutionKey,
        institution_id: f64,
        link: &str,
    ) -> Result<bool, JsError> {
        match self
            .0
            .verify_link(&next.0, id("institution_id", institution_id)?, link)
        {
            Ok(()) => Ok(true),
            Err(cc::CryptoError::DecryptionFailed) => Ok(false),
            Err(e) => Err(js_error(e)),
        }
    }

    /// The fingerprint of this key version for the institution: what colleagues compare.
    pub fn fingerprint(&self, institution_id: f64) -> Result<String, JsError> {
        Ok(self
            .0
            .fingerprint(id("institution_id", institution_id)?)
            .to_string())
    }
}

/// A user's key pair held inside WASM memory. Only its public key, and its private key
/// wrapped under a passphrase (a key file), ever leave.
#[wasm_bindgen]
pub struct UserKeyPair(cc::UserKeyPair);

#[wasm_bindgen]
impl UserKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Result<UserKeyPair, JsError> {
        cc::UserKeyPair::generate()
            .map(UserKeyPair)
            .map_err(js_error)
    }

    /// Unlocks a key file. A wrong passphrase throws `wrong_passphrase: …`.
    #[wasm_bindgen(js_name = importKeyFile)]
    pub fn import_key_file(key_file_json: &str, passphrase: &str) -> Result<UserKeyPair, JsError> {
        cc::UserKeyPair::import_key_file(key_file_json, passphrase)
            .map(UserKeyPair)
            .map_err(js_error)
    }

    /// The public key (base64url), as registered on the server.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> String {
        self.0.public_key().encode()
    }

    /// The public key's fingerprint: six groups of five digits.
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.0.public_key().fingerprint().to_string()
    }

    /// The key file (JSON) protecting the private key under `passphrase` (Argon2id with the
    /// default parameters; at least 8 characters).
    #[wasm_bindgen(js_name = exportKeyFile)]
    pub fn export_key_file(&self, passphrase: &str) -> Result<String, JsError> {
        self.0.export_key_file(passphrase).map_err(js_error)
    }

    /// Opens a key envelope addressed to this user; returns the institution key handle.
    #[wasm_bindgen(js_name = openKeyEnvelope)]
    pub fn open_key_envelope(
        &self,
        envelope: &str,
        user_id: f64,
        institution_id: f64,
        key_version: u32,
    ) -> Result<InstitutionKey, JsError> {
        self.0
            .open_key_envelope(
                envelope,
                id("user_id", user_id)?,
                id("institution_id", institution_id)?,
                key_version,
            )
            .map(InstitutionKey)
            .map_err(js_error)
    }
}

/// A fresh random patient pseudonym (16 characters of Crockford base32).
#[wasm_bindgen(js_name = newPseudonym)]
pub fn new_pseudonym() -> Result<String, JsError> {
    cc::Pseudonym::generate()
        .map(|p| p.to_string())
        .map_err(js_error)
}

/// The canonical form of a pseudonym, or an error if it is not one.
#[wasm_bindgen(js_name = parsePseudonym)]
pub fn parse_pseudonym(text: &str) -> Result<String, JsError> {
    pseudonym(text).map(|p| p.to_string())
}

/// The fingerprint of a public key (e.g. a colleague's, fetched from the server).
#[wasm_bindgen(js_name = publicKeyFingerprint)]
pub fn public_key_fingerprint(public_key: &str) -> Result<String, JsError> {
    let key = cc::PublicKey::parse(public_key).map_err(shape_error)?;
    Ok(key.fingerprint().to_string())
}

/// The public key stated in a key file, read without the passphrase (to show its fingerprint
/// before unlocking).
#[wasm_bindgen(js_name = keyFilePublicKey)]
pub fn key_file_public_key(key_file_json: &str) -> Result<String, JsError> {
    cc::key_file::key_file_public_key(key_file_json)
        .map(|k| k.encode())
        .map_err(js_error)
}

/// The normalized form of `value` for blind-index `field` (what is MACed).
#[wasm_bindgen(js_name = normalizeForIndex)]
pub fn normalize_for_index(field: &str, value: &str) -> Result<String, JsError> {
    let field = cc::BlindIndexField::from_label(field).map_err(js_error)?;
    cc::normalize::normalize(field, value).map_err(js_error)
}

/// A range of safe blind-index lengths.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub struct BitRange {
    /// Shortest safe length in bits.
    pub min: u8,
    /// Longest safe length in bits (the recommended one).
    pub max: u8,
}

/// The length of `field`'s tokens (a label such as `"date_of_birth"`) when the institution's
/// blind indexes are `bits` long: the date of birth's is 6 bits shorter, because the year of
/// birth is kept in clear beside it (client-crypto's README, "Choosing the length").
#[wasm_bindgen(js_name = blindIndexBits)]
pub fn blind_index_bits(field: &str, bits_len: u8) -> Result<u8, JsError> {
    let field = cc::BlindIndexField::from_label(field).map_err(js_error)?;
    Ok(field.index_bits(bits(bits_len)?).get())
}

/// Safe blind-index lengths for `expectedPatients` patients, given the lengths of the other
/// blind indexes on the same rows (CipherSweet's rule 2 <= C < sqrt(R)).
#[wasm_bindgen(js_name = recommendBlindIndexBits)]
pub fn recommend_blind_index_bits(
    expected_patients: f64,
    existing_bits: &[u8],
) -> Result<BitRange, JsError> {
    let r = id("expected_patients", expected_patients)?;
    let r = u64::try_from(r).map_err(|_| {
        js_error(cc::CryptoError::InvalidInput {
            field: "expected_patients",
            reason: "negative",
        })
    })?;
    let range = cc::recommend_bits(r, existing_bits).map_err(js_error)?;
    Ok(BitRange {
        min: range.min,
        max: range.max,
    })
}
