//! Sessions and the principal extractor.
//!
//! A session token is a short-lived HS256 JWT naming a server-side session; the extractor checks
//! the signature and expiry, then that the session is still live and the account active, and
//! loads the caller's permissions (RBAC is data: roles can change between requests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::db::models::sessions::{SecondFactor, SessionUser};
use crate::db::models::{self, audit::NewEntry};
use crate::error::ApiError;
use crate::session_cache::{Memory, SessionCache};
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

/// Seconds a token may be past its expiry and still count (clocks of replicas differ).
const LEEWAY: u64 = 5;

/// Tokens remembered at most as checked; when full, the memory starts over.
const MAX_CHECKED: usize = 10_000;

/// What a token whose signature checked out names.
#[derive(Clone)]
struct Checked {
    user_id: i64,
    session_id: String,
    expires_at: u64,
}

/// The keys that sign and check session tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature and issuer checked out, by the whole token. Decoding and
    /// verifying a token took 12 µs of the 30 µs the async workers spent on a read by id
    /// (bench/README.md, twenty-fifth session); every request of a session sends the same
    /// token. Only a token that passed the full check is here, so a forged or altered one
    /// is never found; the expiry is checked on every use, against the clock.
    checked: Memory<Checked>,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = LEEWAY;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            checked: Memory::new(MAX_CHECKED),
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
        self.check_at(token, jsonwebtoken::get_current_timestamp())
    }

    fn check_at(&self, token: &str, now: u64) -> Option<(i64, String)> {
        let live = |c: &Checked| c.expires_at.saturating_add(LEEWAY) >= now;
        if let Some(c) = self.checked.find(token) {
            return live(&c).then_some((c.user_id, c.session_id));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let checked = Checked {
            user_id: data.claims.sub.parse().ok()?,
            session_id: data.claims.sid,
            expires_at: u64::try_from(data.claims.exp).ok()?,
        };
        if !live(&checked) {
            return None;
        }
        let answer = (checked.user_id, checked.session_id.clone());
        self.checked.remember(token, checked);
        Some(answer)
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
    /// Whether the account has a second factor and whether a role requires one: while one is
    /// required and missing, every permission is refused (403 `totp_enrolment_required`).
    pub second_factor: SecondFactor,
    pub session_id: String,
    pub client_addr: Option<String>,
}

impl Principal {
    /// Whether the caller may use the permission now (holds it, and has the second factor its
    /// roles require).
    pub fn has(&self, permission: Permission) -> bool {
        !self.second_factor.enrolment_required()
            && self.permissions.iter().any(|p| p == permission.as_str())
    }

    /// 403 unless the caller holds the permission (and the second factor its roles require).
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.second_factor.enrolment_required() {
            Err(ApiError::Forbidden {
                code: "totp_enrolment_required",
                message: "your role requires a second factor: set up an authenticator app \
                          (Password and second factor page, or POST /api/v1/me/totp) before anything else"
                    .into(),
            })
        } else if self.has(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(permission.as_str()))
        }
    }

    /// 403 unless the caller holds the permission and belongs to no institution. Roles and
    /// reference books are shared by every institution of the region: an institution's
    /// administrator changing them would change what every other institution's staff may do
    /// and what the ministry's reports count.
    pub fn require_region_wide(&self, permission: Permission) -> Result<(), ApiError> {
        self.require(permission)?;
        match self.institution_id {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden {
                code: "region_wide_only",
                message: "roles and reference books are shared by the whole region: only a \
                          region-wide administrator (one without an institution) changes them"
                    .into(),
            }),
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
            institution_id: self.institution_id,
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

/// The client's address: the peer of the TCP connection, or behind a trusted reverse proxy the
/// client it names ([`crate::proxies`]).
pub fn client_addr(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all(actix_web::http::header::X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok());
    let client = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.settings.trusted_proxies.client(peer, forwarded),
        None => peer.to_canonical(),
    };
    Some(client.to_string())
}

/// What a valid, unexpired session token names: the user and the session, with the client's
/// address. Not yet checked against the database; [`Credentials::authenticate`] does that.
#[derive(Debug, Clone)]
pub struct Credentials {
    user_id: i64,
    session_id: String,
    client_addr: Option<String>,
    sessions: Arc<SessionCache>,
}

impl Credentials {
    /// The token's credentials, or 401 when there is no token or it is forged or expired.
    fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no state")))?;
        let token = token_from(req).ok_or_else(ApiError::unauthorized)?;
        let (user_id, session_id) = state
            .tokens
            .check(&token)
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Self {
            user_id,
            session_id,
            client_addr: client_addr(req),
            sessions: state.sessions.clone(),
        })
    }

    /// The principal: 401 unless the session is live (not revoked, not expired) and the account
    /// active. One small query when the session is known and nothing has changed since
    /// ([`SessionCache`]); otherwise one query, which loads the caller's permissions too.
    pub fn authenticate(self, conn: &mut DbConn) -> Result<Principal, ApiError> {
        let user = self
            .sessions
            .live(conn, &self.session_id, self.user_id, models::now())?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(self.principal(user))
    }

    /// The principal as the session cache last found it, with the auth epoch it was found
    /// under, without asking the database: trust it only for a read that also read the epoch
    /// and found the same ([`crate::routes::read_one_audited_as`]).
    pub fn remembered(&self) -> Option<(i64, Principal)> {
        let (epoch, user) =
            self.sessions
                .remembered(&self.session_id, self.user_id, models::now())?;
        Some((epoch, self.principal(user)))
    }

    fn principal(&self, user: SessionUser) -> Principal {
        Principal {
            user_id: self.user_id,
            login: user.login,
            full_name: user.full_name,
            institution_id: user.institution_id,
            permissions: user.permissions,
            second_factor: user.second_factor,
            session_id: self.session_id.clone(),
            client_addr: self.client_addr.clone(),
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = Credentials::from_request(req);
        let pool = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.pool.clone());
        let request = req.clone();
        Box::pin(async move {
            let credentials = checked?;
            let pool = pool.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no state")))?;
            let principal =
                web::block(move || credentials.authenticate(&mut *pool.get()?)).await??;
            // Kept for the audit of refused requests (see `startup::audit_refusals`).
            request.extensions_mut().insert(principal.clone());
            Ok(principal)
        })
    }
}

/// A caller whose session token checks out, before the database has been asked whether the
/// session is still live. The handlers of the most frequent reads take this instead of
/// [`Principal`] and authenticate inside their own blocking call and read transaction
/// ([`crate::routes::read_audited_as`]): one trip off the async workers instead of two, and
/// the session, the permissions and the data read from one snapshot.
pub struct Caller {
    pub credentials: Credentials,
    /// To keep the principal for the audit of refused requests, as [`Principal`] does.
    pub request: HttpRequest,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Credentials::from_request(req).map(|credentials| Caller {
            credentials,
            request: req.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of the tests, long enough for HS256";

    fn keys_and_token(expires_at: i64) -> (TokenKeys, String) {
        let keys = TokenKeys::new(SECRET);
        let token = keys
            .issue(7, "session-7", expires_at - 600, expires_at)
            .unwrap();
        (keys, token)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_token_checks_out_again_from_memory_and_only_until_it_expires() {
        let expires_at = now() + 600;
        let (keys, token) = keys_and_token(expires_at as i64);
        let named = Some((7, "session-7".to_string()));
        assert_eq!(keys.check_at(&token, now()), named);
        assert_eq!(keys.checked.len(), 1);
        // From memory: the same answer, and none once past the expiry and its leeway.
        assert_eq!(keys.check_at(&token, expires_at + LEEWAY), named);
        assert_eq!(keys.check_at(&token, expires_at + LEEWAY + 1), None);
    }

    #[test]
    fn an_expired_token_is_refused_and_not_remembered() {
        let (keys, token) = keys_and_token(now() as i64 - 60);
        assert_eq!(keys.check_at(&token, now()), None);
        assert!(keys.checked.is_empty());
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused_though_the_real_one_is_remembered() {
        let (keys, token) = keys_and_token(now() as i64 + 600);
        assert!(keys.check_at(&token, now()).is_some());
        // Another session's claims under the remembered token's signature.
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let other = keys.issue(8, "session-8", 0, now() as i64 + 600).unwrap();
        let claims = other.split('.').nth(1).unwrap();
        let forged = format!("{header}.{claims}.{signature}");
        assert_eq!(keys.check_at(&forged, now()), None);
        // Signed with another secret.
        let foreign = TokenKeys::new(b"another secret, just as long as the first")
            .issue(7, "session-7", 0, now() as i64 + 600)
            .unwrap();
        assert_eq!(keys.check_at(&foreign, now()), None);
        assert_eq!(keys.checked.len(), 1);
    }

    #[test]
    fn the_memory_starts_over_when_full() {
        let keys = TokenKeys::new(SECRET);
        let expires_at = now() as i64 + 600;
        for i in 0..=MAX_CHECKED as i64 {
            let token = keys.issue(i, &format!("s{i}"), 0, expires_at).unwrap();
            assert_eq!(keys.check_at(&token, now()), Some((i, format!("s{i}"))));
        }
        assert_eq!(keys.checked.len(), 1);
    }
}
