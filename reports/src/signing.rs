//! Ed25519 signatures over report bytes, so a recipient can check that a report came from
//! this server and that not one byte of it changed.
//!
//! - **Key file**: the raw 32-byte Ed25519 seed, created once with mode 0600 (loading refuses
//!   a file that group or others may read). Creation is atomic: the seed is written to a
//!   temporary file and hard-linked into place, so two processes starting at once end up with
//!   one key, and a crash never leaves a half-written key behind.
//! - **What is signed**: the exact bytes of the report file, with pure Ed25519 (RFC 8032, no
//!   pre-hash), so `openssl pkeyutl -verify -rawin` can check it too. The key signs nothing
//!   but reports.
//! - **Detached signature** (`report.pdf.sig`), UTF-8 text:
//!   ```text
//!   palreg-report-signature v1
//!   ed25519 <standard base64 of the 64-byte signature>
//!   ```
//!   The same base64 alone is what an HTTP response header carries.
//! - **Public key**: standard base64 of the 32 bytes, or PEM (`-----BEGIN PUBLIC KEY-----`,
//!   SubjectPublicKeyInfo as OpenSSL writes it). Both are accepted wherever a key is read.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// First line of a detached signature file.
pub const SIG_FILE_HEADER: &str = "palreg-report-signature v1";
const SIG_ALGORITHM: &str = "ed25519";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } followed by the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";
const SEED_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read or write the signing key {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the signing key {path} is not a 32-byte Ed25519 seed")]
    Malformed { path: String },
    #[error("the signing key {path} may be read by group or others (mode {mode:o}); chmod 600 it")]
    InsecurePermissions { path: String, mode: u32 },
    #[error("no randomness available to generate a key: {0}")]
    Random(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a palreg report signature")]
    MalformedSignature,
    #[error("not an Ed25519 public key (base64 of 32 bytes, or PEM)")]
    MalformedPublicKey,
    #[error(
        "the signature does not match this report and key: the file was changed, or signed by another key"
    )]
    Mismatch,
}

/// The server's report signing key. Its bytes are wiped on drop and never printed.
pub struct ReportSigningKey(SigningKey);

impl fmt::Debug for ReportSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportSigningKey")
            .field("public", &self.public_key().to_base64())
            .finish_non_exhaustive()
    }
}

impl ReportSigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, SigningError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        getrandom::fill(seed.as_mut()).map_err(|e| SigningError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key of a known 32-byte seed (tests, or a key kept elsewhere).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        ReportSigningKey(SigningKey::from_bytes(seed))
    }

    /// Loads the key at `path`, or generates one and stores it there (mode 0600) if there is
    /// no file yet. The directory must exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, SigningError> {
        match Self::load(path) {
            Err(SigningError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Self::create(path)
            }
            other => other,
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let io_err = |source| SigningError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        check_permissions(path, &file)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(SEED_LEN + 1));
        Read::by_ref(&mut file)
            .take(SEED_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        let seed: &[u8; SEED_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SigningError::Malformed {
                    path: path.display().to_string(),
                })?;
        Ok(Self::from_seed(seed))
    }

    fn create(path: &Path) -> Result<Self, SigningError> {
        let io_err = |source| SigningError::Io {
            path: path.display().to_string(),
            source,
        };
        let key = Self::generate()?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| SigningError::Random(e.to_string()))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{suffix}"));
        let tmp = Path::new(&tmp_name);

        let written = write_private(tmp, key.0.as_bytes());
        let linked = written.and_then(|()| fs::hard_link(tmp, path));
        let _ = fs::remove_file(tmp);
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent().and_then(|d| File::open(d).ok()) {
                    let _ = dir.sync_all();
                }
                Ok(key)
            }
            // Another process created the key first: use that one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn public_key(&self) -> ReportPublicKey {
        ReportPublicKey(self.0.verifying_key())
    }

    /// Signs the exact bytes of a report.
    pub fn sign(&self, report: &[u8]) -> ReportSignature {
        ReportSignature(self.0.sign(report))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &File) -> Result<(), SigningError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| SigningError::Io {
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SigningError::InsecurePermissions {
            path: path.display().to_string(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _file: &File) -> Result<(), SigningError> {
    Ok(())
}

/// The public half of the report signing key, as published at
/// `GET /api/v1/reports/public-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPublicKey(VerifyingKey);

impl ReportPublicKey {
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Standard base64 of the 32 key bytes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }

    /// PEM SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.0.as_bytes());
        format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", BASE64.encode(der))
    }

    /// Reads a key written by [`Self::to_base64`] or [`Self::to_pem`].
    pub fn parse(text: &str) -> Result<Self, VerifyError> {
        let text = text.trim();
        let bytes: Vec<u8> = if let Some(body) = text.strip_prefix(PEM_BEGIN) {
            let body = body
                .trim()
                .strip_suffix(PEM_END)
                .ok_or(VerifyError::MalformedPublicKey)?;
            let body: String = body.split_whitespace().collect();
            let der = BASE64
                .decode(body)
                .map_err(|_| VerifyError::MalformedPublicKey)?;
            der.strip_prefix(&SPKI_PREFIX[..])
                .ok_or(VerifyError::MalformedPublicKey)?
                .to_vec()
        } else {
            BASE64
                .decode(text)
                .map_err(|_| VerifyError::MalformedPublicKey)?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| VerifyError::MalformedPublicKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(ReportPublicKey)
            .map_err(|_| VerifyError::MalformedPublicKey)
    }

    /// Checks `signature` over the exact `report` bytes (strict RFC 8032 verification).
    pub fn verify(&self, report: &[u8], signature: &ReportSignature) -> Result<(), VerifyError> {
        self.0
            .verify_strict(report, &signature.0)
            .map_err(|_| VerifyError::Mismatch)
    }
}

/// A detached signature of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSignature(Signature);

impl ReportSignature {
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    /// Standard base64 of the 64 signature bytes (the HTTP header form).
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }

    /// The `.sig` file: a version line and the algorithm with the base64 signature.
    pub fn to_sig_file(&self) -> String {
        self.to_sig_file_under(SIG_FILE_HEADER)
    }

    /// A `.sig` file of the same form whose first line is `header` (what else the server signs
    /// names itself there: a backup, `palreg-backup-signature v1`).
    pub fn to_sig_file_under(&self, header: &str) -> String {
        format!("{header}\n{SIG_ALGORITHM} {}\n", self.to_base64())
    }

    /// Reads a `.sig` file, or the bare base64 signature of the header form.
    pub fn parse(text: &str) -> Result<Self, VerifyError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        match (lines.next(), lines.next()) {
            (Some(only), None) if only != SIG_FILE_HEADER => Self::from_base64(only),
            _ => Self::parse_sig_file(text, SIG_FILE_HEADER),
        }
    }

    /// Reads a `.sig` file written by [`Self::to_sig_file_under`] with `header` (the header
    /// line is required).
    pub fn parse_sig_file(text: &str, header: &str) -> Result<Self, VerifyError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(header) {
            return Err(VerifyError::MalformedSignature);
        }
        let line = lines.next().ok_or(VerifyError::MalformedSignature)?;
        let encoded = line
            .strip_prefix(SIG_ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(VerifyError::MalformedSignature)?;
        if lines.next().is_some() {
            return Err(VerifyError::MalformedSignature);
        }
        Self::from_base64(encoded.trim())
    }

    fn from_base64(encoded: &str) -> Result<Self, VerifyError> {
        let bytes: [u8; 64] = BASE64
            .decode(encoded)
            .map_err(|_| VerifyError::MalformedSignature)?
            .try_into()
            .map_err(|_| VerifyError::MalformedSignature)?;
        Ok(ReportSignature(Signature::from_bytes(&bytes)))
    }
}

/// Checks `signature` over the exact `report` bytes with `public_key`.
pub fn verify(
    public_key: &ReportPublicKey,
    report: &[u8],
    signature: &ReportSignature,
) -> Result<(), VerifyError> {
    public_key.verify(report, signature)
}

/// Checks a report against its detached signature (`.sig` file text or bare base64) and the
/// server's public key (base64 or PEM). What `palreg verify-report` runs, offline.
pub fn verify_file(
    report: &[u8],
    signature_text: &str,
    public_key_text: &str,
) -> Result<(), VerifyError> {
    let key = ReportPublicKey::parse(public_key_text)?;
    let signature = ReportSignature::parse(signature_text)?;
    key.verify(report, &signature)
}
