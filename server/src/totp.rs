//! The optional second factor: time-based one-time passwords (RFC 6238 over RFC 4226's HOTP)
//! as every authenticator app computes them — HMAC-SHA1, 30-second steps, 6 digits.
//!
//! The server has to know each secret to check a code, so it keeps it sealed: AES-256-GCM under
//! a key of its own (`totp.key` in the data directory), bound to the user id, so that a stolen
//! database gives away no second factor and a sealed secret copied onto another account does
//! not open.
//!
//! A confirmed second factor also comes with one-time *recovery codes*, for the day the phone is
//! lost: ten random codes shown once, each of which signs in once in place of the app's code.
//! The server keeps only a keyed hash of each (HMAC-SHA256 under a key derived from
//! `totp.key`, bound to the user id), so neither the database nor its backups give them away,
//! and a stolen database alone cannot be searched for them offline.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::secrets;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps either side of the server's accepted: a phone's clock a little off, a code typed
/// just as it changed.
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;
/// The name authenticator apps show above the account.
pub const ISSUER: &str = "palreg";

/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (31 possible each: about 49.5 bits).
pub const RECOVERY_LEN: usize = 10;
/// The characters of recovery codes: digits and lower-case letters without the ones easily
/// mistaken for others (0 and o, 1 and l and i).
pub const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

const SEAL_DOMAIN: &[u8] = b"palreg totp secret v1";
const RECOVERY_DOMAIN: &[u8] = b"palreg totp recovery code v1";
const NONCE_LEN: usize = 12;

/// RFC 4226's HOTP value of `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The step a moment (Unix seconds) falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code of a step, as an authenticator shows it (leading zeros kept).
pub fn code(secret: &[u8], step: i64) -> String {
    let value = hotp(secret, u64::try_from(step).unwrap_or(0), DIGITS);
    format!("{value:0width$}", width = DIGITS as usize)
}

/// The step of the code, if it is one of the steps around `now_unix` later than `after_step`
/// (the last one accepted: no code counts twice). Spaces in the code are ignored; anything
/// but six digits is refused.
pub fn accept(secret: &[u8], code: &str, now_unix: i64, after_step: i64) -> Option<i64> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = digits.parse().ok()?;
    let now = step_at(now_unix);
    // Every step of the window is computed and compared, whichever matches.
    let mut found = None;
    for step in now - WINDOW..=now + WINDOW {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let matches = hotp(secret, counter, DIGITS) == given;
        if matches && step > after_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret typed by hand.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of an RFC 4648 base32 text (upper or lower case, padding and spaces ignored), or
/// `None` for anything else: how a client reads back the secret it was shown.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `otpauth://` address that an authenticator app reads from a QR code
/// (Key Uri Format: label `issuer:account`, the parameters spelled out).
pub fn otpauth_uri(account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        issuer = percent_encode(ISSUER),
        account = percent_encode(account),
        secret = base32(secret),
    )
}

/// The QR code of a text as rows of `1` (dark) and `0` (light) modules, without the quiet
/// zone, for the browser to draw.
pub fn qr_rows(text: &str) -> anyhow::Result<Vec<String>> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("cannot make a QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    Ok(colors
        .chunks(width)
        .map(|row| {
            row.iter()
                .map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' })
                .collect()
        })
        .collect())
}

/// A new set of recovery codes, as shown to their owner (`xxxxx-xxxxx`), all different.
pub fn new_recovery_codes() -> anyhow::Result<Vec<String>> {
    let mut codes: Vec<String> = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let code = grouped_recovery_code(&random_recovery_code()?);
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// `RECOVERY_LEN` characters drawn uniformly from [`RECOVERY_ALPHABET`].
fn random_recovery_code() -> anyhow::Result<String> {
    let n = RECOVERY_ALPHABET.len();
    // Bytes at or above the largest multiple of the alphabet's size are drawn again, so that
    // every character is equally likely.
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(RECOVERY_LEN);
    while out.len() < RECOVERY_LEN {
        for byte in secrets::random_bytes::<16>()? {
            let byte = usize::from(byte);
            if byte < limit && out.len() < RECOVERY_LEN {
                out.push(char::from(RECOVERY_ALPHABET[byte % n]));
            }
        }
    }
    Ok(out)
}

/// A normalized recovery code in two groups of five, as it is shown.
fn grouped_recovery_code(normalized: &str) -> String {
    let (first, second) = normalized.split_at(normalized.len() / 2);
    format!("{first}-{second}")
}

/// A recovery code as typed (any case, with or without its dash, spaces anywhere) in the form
/// that is hashed, or `None` when it cannot be one.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = code.len() == RECOVERY_LEN && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// The server's key that seals second-factor secrets (and, derived from it, the key that
/// hashes recovery codes).
pub struct TotpKey {
    cipher: Aes256Gcm,
    recovery: [u8; 32],
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpKey(..)")
    }
}

impl TotpKey {
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(RECOVERY_DOMAIN);
        Self {
            cipher: Aes256Gcm::new(key.into()),
            recovery: mac.finalize().into_bytes().into(),
        }
    }

    /// The key in `path` (64 hex digits), generated there on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let text = secrets::load_or_create(path, || Ok(secrets::random_hex::<32>()?.into_bytes()))?;
        let bytes = hex::decode(String::from_utf8_lossy(&text).trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!("{} must hold 64 hex digits (32 bytes)", path.display())
            })?;
        Ok(Self::from_bytes(&bytes))
    }

    fn aad(user_id: i64) -> Vec<u8> {
        let mut aad = SEAL_DOMAIN.to_vec();
        aad.extend_from_slice(&user_id.to_be_bytes());
        aad
    }

    /// What the database keeps of a user's recovery code (normalized by
    /// [`normalize_recovery_code`]): HMAC-SHA256 under the recovery key of the user id and the
    /// code, in hex.
    pub fn recovery_hash(&self, user_id: i64, normalized: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.recovery)
            .expect("HMAC takes keys of any length");
        mac.update(&user_id.to_be_bytes());
        mac.update(normalized.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `base64url(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, user_id: i64, secret: &[u8]) -> anyhow::Result<String> {
        let nonce = secrets::random_bytes::<NONCE_LEN>()?;
        let aad = Self::aad(user_id);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("cannot seal a second-factor secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The secret, or `None` when the text was not sealed by this key for this user.
    pub fn open(&self, user_id: i64, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        let aad = Self::aad(user_id);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (8 digits, secret "12345678901234567890").
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            let counter = u64::try_from(step_at(time)).unwrap();
            assert_eq!(hotp(secret, counter, 8), expected, "T = {time}");
        }
    }

    /// RFC 4226, appendix D: HOTP values for counters 0 to 9.
    #[test]
    fn hotp_matches_the_rfc_4226_test_vectors() {
        let secret = b"12345678901234567890";
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, value) in expected.into_iter().enumerate() {
            assert_eq!(hotp(secret, counter as u64, 6), value);
        }
    }

    #[test]
    fn a_code_is_accepted_within_the_window_once_and_only_as_six_digits() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let step = step_at(now);
        let current = code(secret, step);
        assert_eq!(accept(secret, &current, now, 0), Some(step));
        let spaced = format!("{} {}", &current[..3], &current[3..]);
        assert_eq!(accept(secret, &spaced, now, 0), Some(step));
        // The previous and next steps' codes count; two steps off do not.
        assert_eq!(
            accept(secret, &code(secret, step - 1), now, 0),
            Some(step - 1)
        );
        assert_eq!(
            accept(secret, &code(secret, step + 1), now, 0),
            Some(step + 1)
        );
        assert_eq!(accept(secret, &code(secret, step - 2), now, 0), None);
        assert_eq!(accept(secret, &code(secret, step + 2), now, 0), None);
        // Replays: not after the step it was accepted at.
        assert_eq!(accept(secret, &current, now, step), None);
        assert_eq!(accept(secret, &code(secret, step - 1), now, step), None);
        // Not digits, or not six.
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"] {
            assert_eq!(accept(secret, bad, now, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_is_rfc_4648() {
        // RFC 4648, section 10, without the padding.
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
            assert_eq!(base32_decode(expected).unwrap(), input.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
    }

    #[test]
    fn the_uri_names_the_issuer_and_the_account() {
        let uri = otpauth_uri("ivanova m", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/palreg:ivanova%20m?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=palreg&algorithm=SHA1&digits=6&period=30"
        );
        let rows = qr_rows(&uri).unwrap();
        assert!(rows.len() >= 21 && rows.iter().all(|r| r.len() == rows.len()));
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let key = TotpKey::from_bytes(&[7; 32]);
        let sealed = key.seal(42, b"secret of forty-two!").unwrap();
        assert_eq!(key.open(42, &sealed).unwrap(), b"secret of forty-two!");
        assert!(key.open(43, &sealed).is_none());
        assert!(TotpKey::from_bytes(&[8; 32]).open(42, &sealed).is_none());
        assert!(key.open(42, "not base64!").is_none());
        assert!(key.open(42, "AAAA").is_none());
    }

    #[test]
    fn recovery_codes_are_ten_different_grouped_codes_of_the_alphabet() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), RECOVERY_LEN + 1, "{code}");
            assert_eq!(code.as_bytes()[5], b'-', "{code}");
            let normalized = normalize_recovery_code(code).unwrap();
            assert_eq!(normalized, code.replace('-', ""));
            assert_eq!(grouped_recovery_code(&normalized), *code);
            assert_eq!(codes.iter().filter(|c| *c == code).count(), 1);
        }
        // Two sets share nothing (49.5 bits each: a collision would be a broken generator).
        let again = new_recovery_codes().unwrap();
        assert!(codes.iter().all(|c| !again.contains(c)));
    }

    #[test]
    fn recovery_codes_draw_every_character_of_the_alphabet() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            for code in new_recovery_codes().unwrap() {
                seen.extend(code.bytes().filter(|b| *b != b'-'));
            }
        }
        let alphabet: std::collections::BTreeSet<u8> = RECOVERY_ALPHABET.iter().copied().collect();
        assert_eq!(seen, alphabet);
        assert_eq!(
            alphabet.len(),
            RECOVERY_ALPHABET.len(),
            "no character twice"
        );
        for confusable in b"01ilo" {
            assert!(!alphabet.contains(confusable));
        }
    }

    #[test]
    fn recovery_codes_are_normalized_for_case_dashes_and_spaces() {
        for typed in [
            "abcde-fghjk",
            "abcdefghjk",
            "ABCDE-FGHJK",
            " AbCdE fGhJk ",
            "abc-de-fg-hjk",
            "ab cde\tfghjk",
        ] {
            assert_eq!(
                normalize_recovery_code(typed).as_deref(),
                Some("abcdefghjk"),
                "{typed:?}"
            );
        }
        for bad in [
            "",
            "abcde-fghj",
            "abcde-fghjkm",
            "abcde-fghj0",
            "abcde-fghjl",
            "123456",
            "abcde_fghjk",
            "äbcde-fghjk",
        ] {
            assert_eq!(normalize_recovery_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_recovery_hash_is_keyed_and_bound_to_the_user() {
        let key = TotpKey::from_bytes(&[7; 32]);
        let hash = key.recovery_hash(42, "abcdefghjk");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, key.recovery_hash(42, "abcdefghjk"));
        assert_ne!(hash, key.recovery_hash(43, "abcdefghjk"));
        assert_ne!(hash, key.recovery_hash(42, "abcdefghjm"));
        assert_ne!(
            hash,
            TotpKey::from_bytes(&[8; 32]).recovery_hash(42, "abcdefghjk")
        );
        // Not the bare SHA-256 of the code, with or without the user id.
        use sha2::Digest;
        assert_ne!(hash, hex::encode(Sha256::digest(b"abcdefghjk")));
    }
}
