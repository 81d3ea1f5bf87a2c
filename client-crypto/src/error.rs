//! The crate's error types. Every variant has a stable machine code ([`CryptoError::code`],
//! [`ShapeError::code`]) that the WASM layer puts at the start of the JavaScript error message
//! and that the test vectors name.

use std::fmt;

/// The wire formats owned by this crate, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A sealed patient passport.
    Passport,
    /// A sealed free-text note.
    Note,
    /// An institution key wrapped to a user's public key.
    KeyEnvelope,
    /// A passphrase-protected private key file.
    KeyFile,
    /// An encoded X25519 public key.
    PublicKey,
    /// A blind-index token.
    BlindIndex,
    /// A key chain link (see [`crate::key_chain`]).
    KeyChainLink,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Passport => "passport envelope",
            Format::Note => "sealed note",
            Format::KeyEnvelope => "key envelope",
            Format::KeyFile => "key file",
            Format::PublicKey => "public key",
            Format::BlindIndex => "blind index",
            Format::KeyChainLink => "key chain link",
        })
    }
}

/// A structural defect found without any key: what the server's shape checks report, and what
/// every opening function reports before it tries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Not base64url without padding (or, for blind indexes, not lowercase hex).
    #[error("{0} is not validly encoded")]
    InvalidEncoding(Format),
    /// The leading version byte names a version this crate does not know.
    #[error("unsupported {format} version {version}")]
    UnsupportedVersion {
        /// Which format.
        format: Format,
        /// The version byte found.
        version: u8,
    },
    /// The decoded bytes have a length the format does not allow.
    #[error("{0} has an invalid length")]
    InvalidLength(Format),
    /// A public key that is a low-order point (it would make every shared secret predictable).
    #[error("public key is a low-order point")]
    LowOrderPublicKey,
    /// A blind-index token naming an unknown field.
    #[error("blind index names an unknown field {0}")]
    UnknownField(u8),
    /// A blind-index bit length outside 1..=64.
    #[error("blind index bit length {0} is outside 1..=64")]
    InvalidBits(u8),
    /// A blind-index token whose bits beyond its stated length are not zero.
    #[error("blind index has non-zero bits past its length")]
    NonZeroPaddingBits,
}

impl ShapeError {
    /// A stable machine-readable code, e.g. for a 400 response.
    pub fn code(&self) -> &'static str {
        match self {
            ShapeError::InvalidEncoding(_) => "invalid_encoding",
            ShapeError::UnsupportedVersion { .. } => "unsupported_version",
            ShapeError::InvalidLength(_) => "invalid_length",
            ShapeError::LowOrderPublicKey => "low_order_public_key",
            ShapeError::UnknownField(_) => "unknown_field",
            ShapeError::InvalidBits(_) => "invalid_bits",
            ShapeError::NonZeroPaddingBits => "non_zero_padding_bits",
        }
    }
}

/// Every failure of this crate. Messages never contain key bytes, plaintext or identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The input is structurally wrong (see [`ShapeError`]).
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The envelope was sealed under another version of the institution key.
    #[error("sealed under key version {found}, but the key has version {expected}")]
    KeyVersionMismatch {
        /// The version of the key offered.
        expected: u32,
        /// The version stated in the envelope.
        found: u32,
    },
    /// Authentication failed: wrong key, a bound value (pseudonym, institution, key version,
    /// record, user) differs from the one sealed, or the data was tampered with.
    #[error("decryption failed: wrong key, wrong binding or tampered data")]
    DecryptionFailed,
    /// The key file did not open: the passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// Argon2id parameters below the minimum this crate accepts, or absurdly large.
    #[error("Argon2id parameters outside the accepted range")]
    WeakKdfParameters,
    /// A new key file's passphrase is too short.
    #[error("passphrase must have at least {min} characters")]
    WeakPassphrase {
        /// Minimum number of characters.
        min: usize,
    },
    /// The key file is not a valid palreg key file.
    #[error("invalid key file: {0}")]
    InvalidKeyFile(&'static str),
    /// Not a pseudonym (16 characters of Crockford base32).
    #[error("invalid pseudonym: expected 16 characters of Crockford base32")]
    InvalidPseudonym,
    /// A value given for a blind index (or a passport field) that cannot be normalized.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The decrypted plaintext does not carry the padding this format defines.
    #[error("invalid padding in decrypted data")]
    InvalidPadding,
    /// The decrypted passport is not a valid passport document.
    #[error("decrypted passport is not a valid passport document")]
    InvalidPassport,
    /// The plaintext is larger than the format allows.
    #[error("plaintext too large: at most {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// A record binding is empty or too long.
    #[error("invalid binding: {0}")]
    InvalidBinding(&'static str),
    /// No bit length satisfies 2 <= C < sqrt(R) for this population.
    #[error("no blind-index length keeps 2 <= C < sqrt(R) for this population")]
    NoSafeBitLength,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

impl CryptoError {
    /// A stable machine-readable code (also the prefix of WASM error messages).
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::Shape(e) => e.code(),
            CryptoError::KeyVersionMismatch { .. } => "key_version_mismatch",
            CryptoError::DecryptionFailed => "decryption_failed",
            CryptoError::WrongPassphrase => "wrong_passphrase",
            CryptoError::WeakKdfParameters => "weak_kdf_parameters",
            CryptoError::WeakPassphrase { .. } => "weak_passphrase",
            CryptoError::InvalidKeyFile(_) => "invalid_key_file",
            CryptoError::InvalidPseudonym => "invalid_pseudonym",
            CryptoError::InvalidInput { .. } => "invalid_input",
            CryptoError::InvalidPadding => "invalid_padding",
            CryptoError::InvalidPassport => "invalid_passport",
            CryptoError::TooLarge { .. } => "too_large",
            CryptoError::InvalidBinding(_) => "invalid_binding",
            CryptoError::NoSafeBitLength => "no_safe_bit_length",
            CryptoError::Rng => "rng_failure",
        }
    }
}
