//! Sign-in and sign-out.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, SESSION_COOKIE, client_addr};
use crate::db::models::{self, audit::NewEntry, sessions, sign_in, totp, users};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::password;
use crate::routes::totp::open_secret;
use crate::routes::{audit_only, audited, db, write};
use crate::secrets;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
    /// For an account with a second factor (without it such an account gets 401
    /// `totp_required`): the authenticator app's current code (six digits), or one of the
    /// account's recovery codes (`xxxxx-xxxxx`; case, dashes and spaces do not matter), which
    /// then cannot sign in again. A wrong one is 401 `invalid_totp` and counts toward the
    /// lockout, like a wrong password.
    #[serde(default)]
    pub totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "wrong login or password".into(),
    }
}

fn invalid_totp() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_totp",
        message: "wrong or already used authenticator code or recovery code".into(),
    }
}

/// The second factor of a sign-in, once checked.
enum Accepted {
    /// The step of an authenticator's code.
    Step(i64),
    /// The hash of a recovery code the account has.
    RecoveryCode(String),
}

/// Counts an attempt on an account before its password or code is checked
/// ([`users::count_attempt`]): `Ok(locks)` when it may be checked (`locks`: this attempt is the
/// one that locks the account, said in the audit entry if it is refused); 429 `account_locked`,
/// audited as `entry` refused, while the account is locked. A right password or code then
/// clears the count.
pub async fn count_attempt(
    state: &web::Data<AppState>,
    entry: &NewEntry,
    user_id: i64,
    now: chrono::NaiveDateTime,
) -> ApiResult<bool> {
    let threshold = state.settings.lockout_threshold;
    let lock_until =
        now + Duration::from_std(state.settings.lockout_duration).map_err(ApiError::internal)?;
    let attempt = write(state, move |conn| {
        Ok(users::count_attempt(
            conn, user_id, now, threshold, lock_until,
        )?)
    })
    .await?;
    match attempt {
        users::Attempt::Counted { locks } => Ok(locks),
        users::Attempt::Locked(until) => {
            let refused = NewEntry {
                actor_id: Some(user_id),
                outcome: "account_locked".into(),
                ..entry.clone()
            };
            audit_only(state, refused).await?;
            Err(account_locked(until, now))
        }
    }
}

/// Audits a refused attempt that [`count_attempt`] counted.
pub async fn refuse_attempt(
    state: &web::Data<AppState>,
    mut entry: NewEntry,
    user_id: i64,
    locks: bool,
) -> ApiResult<()> {
    entry.actor_id = Some(user_id);
    if locks {
        entry.details = Some(r#"{"locked":true}"#.into());
        tracing::warn!(user_id, "account locked after repeated failures");
    }
    audit_only(state, entry).await
}

/// 429 for an account locked until `until`.
pub fn account_locked(until: chrono::NaiveDateTime, now: chrono::NaiveDateTime) -> ApiError {
    let wait = (until - now).num_seconds().max(1);
    ApiError::TooManyRequests {
        code: "account_locked",
        message: "too many wrong passwords or codes; the account is locked for a while".into(),
        retry_after_secs: u64::try_from(wait).unwrap_or(1),
    }
}

/// Signs in. The token comes in the body (for API clients) and in an HttpOnly cookie (for the
/// browser).
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "Wrong login or password", body = ErrorBody),
        (status = 429, description = "Account locked or too many attempts", body = ErrorBody),
    )
)]
#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let addr = client_addr(&req);
    let client = crate::ratelimit::client_key(addr.as_deref());
    let limiter = &state.login_limiter;
    let window = Duration::from_std(limiter.window()).map_err(ApiError::internal)?;
    let limit = limiter.limit();
    let counted = match limiter.check(&client) {
        // Spent on this replica alone: refused without asking the database.
        Err(wait) => Err(wait),
        // Counted with the other replicas' attempts.
        Ok(()) => {
            let now = models::now();
            write(&state, move |conn| {
                Ok(sign_in::count(conn, &client, now, window, limit)?)
            })
            .await?
        }
    };
    if let Err(wait) = counted {
        return Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: "too many sign-in attempts from this address".into(),
            retry_after_secs: wait,
        });
    }
    let LoginRequest {
        login,
        password,
        totp: code,
    } = body.into_inner();
    let login = login.trim().to_lowercase();
    if login.is_empty()
        || login.len() > 64
        || login.chars().any(char::is_control)
        || password.len() > 1024
    {
        return Err(invalid_credentials());
    }
    let mut attempt = NewEntry {
        actor_login: Some(login.clone()),
        action: "auth.login".into(),
        object_type: "session".into(),
        outcome: "ok".into(),
        client_addr: addr.clone(),
        ..Default::default()
    };

    let lookup_login = login.clone();
    // A recovery code (ten characters) is never an authenticator's code (six digits).
    let recovery_code = code
        .as_deref()
        .and_then(crate::totp::normalize_recovery_code);
    let with_recovery_code = recovery_code.is_some();
    let lookup_state = state.clone();
    // The account and its second factor (if confirmed), in one trip to the database; with a
    // recovery code, the hash of it if the account has it.
    let (user, enrolment, known_recovery_code) = db(&state, move |conn| {
        let user = users::find_by_login(conn, &lookup_login)?;
        let enrolment = match &user {
            Some(user) => totp::find(conn, user.id)?.filter(|e| e.confirmed()),
            None => None,
        };
        let mut known = None;
        if let (Some(user), Some(_), Some(code)) = (&user, &enrolment, &recovery_code) {
            let hash = lookup_state.totp_key.recovery_hash(user.id, code);
            if totp::has_recovery_code(conn, user.id, &hash)? {
                known = Some(hash);
            }
        }
        Ok((user, enrolment, known))
    })
    .await?;
    // The account's attempts count where the account belongs (unknown logins nowhere).
    attempt.institution_id = user.as_ref().and_then(|u| u.institution_id);

    let now = models::now();
    // An active account's attempt is counted before its password is checked (see
    // `count_attempt`); unknown and de-registered logins have nothing to count.
    let locks = match &user {
        Some(user) if user.active => Some(count_attempt(&state, &attempt, user.id, now).await?),
        _ => None,
    };

    let verified = {
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        web::block(move || match stored {
            Some(hash) => password::verify(&hash, &password),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await?
    };

    let user = match user {
        Some(user) if verified && user.active => user,
        user => {
            let entry = NewEntry {
                outcome: "invalid_credentials".into(),
                ..attempt
            };
            match (user.filter(|u| u.active), locks) {
                (Some(user), Some(locks)) => refuse_attempt(&state, entry, user.id, locks).await?,
                _ => audit_only(&state, entry).await?,
            }
            return Err(invalid_credentials());
        }
    };

    // The second factor, once the password is right.
    let user_id = user.id;
    let mut accepted = None;
    if let Some(enrolment) = enrolment {
        let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
            let entry = NewEntry {
                actor_id: Some(user_id),
                outcome: "totp_required".into(),
                ..attempt
            };
            audit_only(&state, entry).await?;
            return Err(ApiError::Unauthorized {
                code: "totp_required",
                message: "this account signs in with the code of its authenticator app (or a \
                          recovery code) as well"
                    .into(),
            });
        };
        accepted = if with_recovery_code {
            known_recovery_code.map(Accepted::RecoveryCode)
        } else {
            let secret = open_secret(&state.totp_key, user_id, &enrolment.sealed_secret)?;
            crate::totp::accept(
                &secret,
                &code,
                now.and_utc().timestamp(),
                enrolment.last_step,
            )
            .map(Accepted::Step)
        };
        if accepted.is_none() {
            let entry = NewEntry {
                outcome: if with_recovery_code {
                    "invalid_recovery_code"
                } else {
                    "invalid_totp"
                }
                .into(),
                ..attempt
            };
            refuse_attempt(&state, entry, user_id, locks.unwrap_or(false)).await?;
            return Err(invalid_totp());
        }
    }

    let session_id = secrets::random_hex::<16>().map_err(ApiError::internal)?;
    let ttl = Duration::from_std(state.settings.session_ttl).map_err(ApiError::internal)?;
    let expires_at = now + ttl;
    let entry = NewEntry {
        actor_id: Some(user.id),
        object_id: Some(session_id[..8].to_string()),
        ..attempt
    };
    let sid = session_id.clone();
    audited(&state, entry, move |conn, entry| {
        // The password was checked against the account of a moment ago: a reset or a
        // de-registration since then (an administrator shutting a stolen account) wins.
        let current = users::find(conn, user.id)?;
        if current.password_hash != user.password_hash || !current.active {
            return Err(invalid_credentials());
        }
        // Two sign-ins racing with one code: only the first gets it.
        let used = match &accepted {
            Some(Accepted::Step(step)) => totp::use_step(conn, user_id, *step)?,
            Some(Accepted::RecoveryCode(hash)) => totp::use_recovery_code(conn, user_id, hash)?,
            None => true,
        };
        if !used {
            return Err(invalid_totp());
        }
        if let Some(Accepted::RecoveryCode(_)) = accepted {
            // Said apart in the audit log, with how many are left.
            let left = totp::recovery_codes_left(conn, user_id)?;
            entry.details = Some(
                serde_json::json!({"second_factor": "recovery_code", "recovery_codes_left": left})
                    .to_string(),
            );
        }
        users::record_successful_login(conn, user.id)?;
        sessions::create(conn, &sid, user.id, now, expires_at)?;
        Ok(())
    })
    .await?;

    let token = state
        .tokens
        .issue(
            user.id,
            &session_id,
            now.and_utc().timestamp(),
            expires_at.and_utc().timestamp(),
        )
        .map_err(ApiError::internal)?;
    let cookie = Cookie::build(SESSION_COOKIE, token.clone())
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(ttl.num_seconds()))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl.num_seconds(),
    }))
}

/// Signs out: the session is revoked at once and the cookie cleared.
#[utoipa::path(
    tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody))
)]
#[post("/api/v1/auth/logout")]
pub async fn logout(state: web::Data<AppState>, principal: Principal) -> ApiResult<HttpResponse> {
    let entry = principal.audit(
        "auth.logout",
        "session",
        Some(principal.session_id[..8].to_string()),
    );
    let sid = principal.session_id.clone();
    audited(&state, entry, move |conn, _| {
        sessions::revoke(conn, &sid, models::now())?;
        Ok(())
    })
    .await?;
    let mut expired = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish();
    expired.make_removal();
    Ok(HttpResponse::NoContent().cookie(expired).finish())
}
