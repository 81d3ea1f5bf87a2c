//! Sessions and the principal extractor.
//!
//! A session token is a short-lived HS256 JWT naming a server-side session; the extractor checks
//! the signature and expiry, then that the session is still live and the account active, and
//! loads the caller's permissions (RBAC is data: roles can change between requests).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::models::{self, audit::NewEntry, sessions};
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie that carries the session token for the browser.
pub const SESSION_COOKIE: &str = "palreg_session";

/// Permissions the code checks. Roles that grant them are data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Administration,
    Patients,
    MedicalRecords,
    Reporting,
    SummaryReporting,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Self::Administration,
        Self::Patients,
        Self::MedicalRecords,
        Self::Reporting,
        Self::SummaryReporting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administration => "administration",
            Self::Patients => "patients",
            Self::MedicalRecords => "medical_records",
            Self::Reporting => "reporting",
            Self::SummaryReporting => "summary_reporting",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Administration => "Users, roles, reference books and the audit log",
            Self::Patients => "Register, edit and search the institution's patients; keys",
            Self::MedicalRecords => "Observations and prescriptions of the institution's patients",
            Self::Reporting => "Prescription and summary reports of the own institution",
            Self::SummaryReporting => "Summary reports across institutions (aggregates only)",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// User id.
    sub: String,
    /// Session id.
    sid: String,
    iat: i64,
    exp: i64,
    iss: String,
}

const ISSUER: &str = "palreg";

/// The keys that sign and check session tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(
        &self,
        user_id: i64,
        session_id: &str,
        issued_at: i64,
        expires_at: i64,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: issued_at,
            exp: expires_at,
            iss: ISSUER.to_string(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The (user id, session id) of a valid, unexpired token.
    fn check(&self, token: &str) -> Option<(i64, String)> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        let user_id = data.claims.sub.parse().ok()?;
        Some((user_id, data.claims.sid))
    }
}

/// The signed-in caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub login: String,
    pub full_name: String,
    /// `None` for region-wide users (the ministry).
    pub institution_id: Option<i64>,
    pub permissions: Vec<String>,
    pub session_id: String,
    pub client_addr: Option<String>,
}

impl Principal {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.iter().any(|p| p == permission.as_str())
    }

    /// 403 unless the caller holds the permission.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(permission.as_str()))
        }
    }

    /// An audit entry with this caller as the actor.
    pub fn audit(&self, action: &str, object_type: &str, object_id: Option<String>) -> NewEntry {
        NewEntry {
            actor_id: Some(self.user_id),
            actor_login: Some(self.login.clone()),
            action: action.into(),
            object_type: object_type.into(),
            object_id,
            outcome: "ok".into(),
            client_addr: self.client_addr.clone(),
            ..Default::default()
        }
    }
}

/// The token from `Authorization: Bearer …`, or else from the session cookie.
pub fn token_from(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())
}

/// The client's address as the server saw it (the peer of the TCP connection).
pub fn client_addr(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request = req.clone();
        let token = token_from(req);
        let client_addr = client_addr(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no state")))?;
            let token = token.ok_or_else(ApiError::unauthorized)?;
            let (user_id, session_id) = state
                .tokens
                .check(&token)
                .ok_or_else(ApiError::unauthorized)?;
            let pool = state.pool.clone();
            let loaded = web::block(move || -> Result<Option<Principal>, ApiError> {
                let mut conn = pool.get()?;
                let Some(user) =
                    sessions::live_principal(&mut conn, &session_id, user_id, models::now())?
                else {
                    return Ok(None);
                };
                Ok(Some(Principal {
                    user_id,
                    login: user.login,
                    full_name: user.full_name,
                    institution_id: user.institution_id,
                    permissions: user.permissions,
                    session_id,
                    client_addr,
                }))
            })
            .await??;
            let principal = loaded.ok_or_else(ApiError::unauthorized)?;
            // Kept for the audit of refused requests (see `startup::audit_refusals`).
            request.extensions_mut().insert(principal.clone());
            Ok(principal)
        })
    }
}
