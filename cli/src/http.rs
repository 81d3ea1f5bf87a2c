//! The HTTP layer behind a trait, so tests can record every body the client sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::error::{Error, Result};

/// One request: method, absolute URL, bearer token, JSON body.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a str>,
}

/// Status and body text of a response.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends requests. Implemented by [`UreqTransport`]; tests wrap it to record bodies.
pub trait Transport: Send + Sync {
    fn send(&self, request: &Request<'_>) -> Result<Response>;
}

/// How to trust the server's certificate.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// The usual web PKI roots.
    #[default]
    WebPki,
    /// A PEM certificate file (e.g. the palreg server's self-signed `tls/cert.pem`).
    CaCert(std::path::PathBuf),
    /// The SHA-256 fingerprint of the server's certificate, as the server prints it.
    Fingerprint(String),
}

/// The real transport: ureq with rustls (ring).
pub struct UreqTransport {
    agent: ureq::Agent,
}

const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

impl UreqTransport {
    pub fn new(server: &str, trust: &Trust) -> Result<Self> {
        let roots = match trust {
            Trust::WebPki => RootCerts::WebPki,
            Trust::CaCert(path) => {
                let pem = std::fs::read(path)?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .map(|c| c.map(|der| Certificate::from_der(der.as_ref()).to_owned()))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(Error::usage(format!("{}: no certificate", path.display())));
                }
                RootCerts::Specific(Arc::new(certs))
            }
            Trust::Fingerprint(pin) => {
                let der = crate::tls_pin::fetch_pinned_certificate(server, pin)?;
                RootCerts::Specific(Arc::new(vec![Certificate::from_der(&der).to_owned()]))
            }
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Ok(Self {
            agent: config.into(),
        })
    }
}

impl Transport for UreqTransport {
    fn send(&self, r: &Request<'_>) -> Result<Response> {
        let auth = r.token.map(|t| format!("Bearer {t}"));
        let result = match (r.method, r.body) {
            ("GET", _) => {
                let mut req = self.agent.get(r.url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            (method, body) => {
                let mut req = match method {
                    "PUT" => self.agent.put(r.url),
                    _ => self.agent.post(r.url),
                };
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.header("Content-Type", "application/json")
                    .send(body.unwrap_or("{}"))
            }
        };
        let response = result.map_err(|e| Error::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Response { status, body })
    }
}

/// A transport that keeps a copy of every request body (for the plaintext checks in tests).
pub struct Recording<T> {
    inner: T,
    bodies: Mutex<Vec<String>>,
}

impl<T: Transport> Recording<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// Every request body sent so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl<T: Transport> Transport for Recording<T> {
    fn send(&self, request: &Request<'_>) -> Result<Response> {
        if let (Some(body), Ok(mut bodies)) = (request.body, self.bodies.lock()) {
            bodies.push(body.to_string());
        }
        self.inner.send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: &Request<'_>) -> Result<Response> {
        (**self).send(request)
    }
}

/// A fingerprint as hex without separators, lower case.
pub fn normalize_fingerprint(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// SHA-256 of a certificate's DER, lower-case hex.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
