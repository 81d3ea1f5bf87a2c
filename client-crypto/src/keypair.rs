//! User key pairs (X25519), encoded public keys and their fingerprints.

use std::fmt;

use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::ZeroizeOnDrop;

use crate::encoding::{Binding, b64_decode, b64_encode};
use crate::random::random_array;
use crate::{CryptoError, Format, ShapeError};

/// Version byte of an encoded public key.
pub const PUBLIC_KEY_VERSION: u8 = 1;
/// Length of an encoded public key before base64url: version byte + 32 bytes.
pub const PUBLIC_KEY_ENCODED_LEN: usize = 33;
/// Domain-separation label of fingerprints.
pub const FINGERPRINT_DOMAIN: &str = "palreg/public-key-fingerprint/v1";

/// A user's X25519 public key. Its text form is base64url (no padding) of
/// `version(1) | 32-byte X25519 public key`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses the text form, refusing a wrong version or length and low-order points.
    pub fn parse(text: &str) -> Result<Self, ShapeError> {
        let bytes = b64_decode(text, Format::PublicKey, PUBLIC_KEY_ENCODED_LEN)?;
        let (&version, key) = bytes
            .split_first()
            .ok_or(ShapeError::InvalidLength(Format::PublicKey))?;
        if version != PUBLIC_KEY_VERSION {
            return Err(ShapeError::UnsupportedVersion {
                format: Format::PublicKey,
                version,
            });
        }
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| ShapeError::InvalidLength(Format::PublicKey))?;
        Self::from_raw(key)
    }

    /// Wraps raw X25519 bytes, refusing low-order points.
    pub(crate) fn from_raw(key: [u8; 32]) -> Result<Self, ShapeError> {
        if is_low_order(&key) {
            return Err(ShapeError::LowOrderPublicKey);
        }
        Ok(PublicKey(key))
    }

    /// The text form.
    pub fn encode(&self) -> String {
        b64_encode(&self.encoded_bytes())
    }

    pub(crate) fn encoded_bytes(&self) -> [u8; PUBLIC_KEY_ENCODED_LEN] {
        let mut out = [0u8; PUBLIC_KEY_ENCODED_LEN];
        out[0] = PUBLIC_KEY_VERSION;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// The raw 32-byte X25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The fingerprint two people compare by voice or on screen.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut input = Binding::new(FINGERPRINT_DOMAIN);
        input.raw(&self.encoded_bytes());
        Fingerprint::from_digest(&Sha256::digest(input.as_slice()).into())
    }

    pub(crate) fn to_dalek(self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.0)
    }
}

/// A point is of low order iff multiplying it by a clamped scalar (a multiple of the cofactor
/// 8) gives the identity, whose u-coordinate encodes as all zeros.
fn is_low_order(point: &[u8; 32]) -> bool {
    const PROBE: [u8; 32] = [0x5a; 32];
    x25519_dalek::x25519(PROBE, *point) == [0u8; 32]
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.encode())
    }
}

impl std::str::FromStr for PublicKey {
    type Err = ShapeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::parse(s)
    }
}

/// A public-key fingerprint: SHA-256 over the domain label and the encoded public key, its
/// first 30 bytes read as six 40-bit big-endian numbers, each reduced modulo 100 000 and written
/// as five decimal digits: `"12345 67890 …"` (six groups, about 100 bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The first 30 bytes of a SHA-256 digest, as six groups of five digits.
    pub(crate) fn from_digest(digest: &[u8; 32]) -> Fingerprint {
        let groups: Vec<String> = digest[..30]
            .chunks_exact(5)
            .map(|chunk| {
                let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                format!("{:05}", n % 100_000)
            })
            .collect();
        Fingerprint(groups.join(" "))
    }

    /// The six groups of five digits separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's X25519 key pair. The private key never leaves in clear: only inside a key file
/// wrapped under a passphrase. Zeroized on drop; `Debug` shows the public key only; not
/// `Serialize`.
pub struct UserKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl UserKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = zeroize::Zeroizing::new(random_array::<32>()?);
        Self::from_secret_bytes(*bytes)
    }

    pub(crate) fn from_secret_bytes(bytes: [u8; 32]) -> Result<Self, CryptoError> {
        let secret = StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret);
        // A clamped scalar times the base point is never of low order; checked anyway so a
        // corrupt key can never produce a predictable shared secret.
        let public = PublicKey::from_raw(public.to_bytes())?;
        Ok(UserKeyPair { secret, public })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl ZeroizeOnDrop for UserKeyPair {}

impl fmt::Debug for UserKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKeyPair")
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn public_key_text_round_trips() {
        let pair = UserKeyPair::generate().unwrap();
        let text = pair.public_key().encode();
        assert_eq!(text.len(), 44);
        assert_eq!(PublicKey::parse(&text).unwrap(), *pair.public_key());
    }

    #[test]
    fn low_order_points_are_refused() {
        // Low-order points of Curve25519 (0, 1, the order-8 points, p-1, p, p+1), from
        // https://cr.yp.to/ecdh.html#validate and RFC 7748 section 6.1 discussions.
        let points = [
            hex!("0000000000000000000000000000000000000000000000000000000000000000"),
            hex!("0100000000000000000000000000000000000000000000000000000000000000"),
            hex!("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex!("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            hex!("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex!("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex!("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ];
        for p in points {
            assert_eq!(PublicKey::from_raw(p), Err(ShapeError::LowOrderPublicKey));
        }
    }

    #[test]
    fn public_key_shape_errors() {
        let pair = UserKeyPair::generate().unwrap();
        let mut bytes = pair.public_key().encoded_bytes().to_vec();
        bytes[0] = 2;
        assert!(matches!(
            PublicKey::parse(&b64_encode(&bytes)),
            Err(ShapeError::UnsupportedVersion { version: 2, .. })
        ));
        bytes[0] = PUBLIC_KEY_VERSION;
        assert_eq!(
            PublicKey::parse(&b64_encode(&bytes[..32])),
            Err(ShapeError::InvalidLength(Format::PublicKey))
        );
    }

    #[test]
    fn fingerprint_is_six_groups_of_five_digits() {
        let pair = UserKeyPair::generate().unwrap();
        let fp = pair.public_key().fingerprint();
        let groups: Vec<&str> = fp.as_str().split(' ').collect();
        assert_eq!(groups.len(), 6);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
        let other = UserKeyPair::generate().unwrap();
        assert_ne!(other.public_key().fingerprint(), fp);
    }

    #[test]
    fn debug_shows_only_the_public_key() {
        let pair = UserKeyPair::from_secret_bytes([0x11; 32]).unwrap();
        let shown = format!("{pair:?}");
        assert!(shown.starts_with("UserKeyPair { public_key: PublicKey("));
        assert!(!shown.contains("1111"));
    }
}
