//! The client's one error type. Messages name lines, columns and codes, never passport values.

/// Everything that can go wrong in a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments, missing configuration, a refused confirmation.
    #[error("{0}")]
    Usage(String),
    /// The server refused the request with its JSON error body.
    #[error("the server answered {status} ({code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The newest institution key version held is not vouched for by the key chain: nothing is
    /// sealed under it (it may have been planted on the server).
    #[error("{0}")]
    UntrustedKey(crate::keys::Distrust),
    /// The server could not be reached, or TLS failed.
    #[error("cannot reach the server: {0}")]
    Http(String),
    #[error("cryptography: {0}")]
    Crypto(#[from] client_crypto::CryptoError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// The server's error code, if the server answered with one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
