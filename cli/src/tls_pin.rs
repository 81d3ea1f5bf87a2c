//! Trust on a printed fingerprint: one TLS handshake whose verifier accepts only the
//! certificate with the pinned SHA-256; that certificate then becomes ureq's only root.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};
use crate::http::{certificate_fingerprint, normalize_fingerprint};

#[derive(Debug)]
struct Pinned {
    pin: String,
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if certificate_fingerprint(end_entity.as_ref()) != self.pin {
            return Err(rustls::Error::General(
                "the server's certificate does not have the expected fingerprint".into(),
            ));
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.as_ref().to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects to `server` (an `https://host:port` URL) and returns the DER of its certificate if
/// its SHA-256 equals `pin`.
pub fn fetch_pinned_certificate(server: &str, pin: &str) -> Result<Vec<u8>> {
    let pin = normalize_fingerprint(pin);
    if pin.len() != 64 {
        return Err(Error::usage(
            "a certificate fingerprint is 32 bytes of hex (SHA-256)",
        ));
    }
    let rest = server
        .strip_prefix("https://")
        .ok_or_else(|| Error::usage("--insecure-tls-fingerprint needs an https:// server"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse().map_err(|_| Error::usage("bad port"))?)
        }
        _ => (authority, 443u16),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        pin,
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Http(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| Error::usage(e.to_string()))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| Error::Http(e.to_string()))?;
    let mut sock = TcpStream::connect((host, port))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| Error::Http(format!("TLS: {e}")))?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    verifier
        .seen
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or_else(|| Error::Http("no certificate seen".into()))
}
