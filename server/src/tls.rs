//! TLS with rustls: configured certificate files, or a self-signed certificate generated into
//! the data directory on first run.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsSettings;
use crate::secrets;

/// The server's TLS configuration and the SHA-256 fingerprint of its leaf certificate.
pub struct Tls {
    pub config: ServerConfig,
    pub fingerprint: String,
    pub generated: bool,
}

pub fn load(settings: &TlsSettings, data_dir: &Path) -> anyhow::Result<Option<Tls>> {
    let (cert_pem, key_pem, generated) = match settings {
        TlsSettings::Off => return Ok(None),
        TlsSettings::Files { cert, key } => (
            std::fs::read(cert).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?,
            std::fs::read(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
            false,
        ),
        TlsSettings::SelfSigned => self_signed(data_dir)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("cannot read the TLS certificate: {e}"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the TLS certificate file holds no certificate"))?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow::anyhow!("cannot read the TLS private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Some(Tls {
        config,
        fingerprint,
        generated,
    }))
}

/// SHA-256 of the certificate's DER, as colon-separated hex (what browsers show).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn self_signed(data_dir: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>, bool)> {
    let cert_path = data_dir.join("tls").join("cert.pem");
    let key_path = data_dir.join("tls").join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((std::fs::read(&cert_path)?, std::fs::read(&key_path)?, false));
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let cert_pem = certified.cert.pem().into_bytes();
    let key_pem = certified.signing_key.serialize_pem().into_bytes();
    secrets::write_private(&key_path, &key_pem)?;
    secrets::write_private(&cert_path, &cert_pem)?;
    Ok((cert_pem, key_pem, true))
}
