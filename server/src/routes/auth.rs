//! Sign-in and sign-out.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, SESSION_COOKIE, client_addr};
use crate::db::models::{self, audit::NewEntry, sessions, users};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::password;
use crate::routes::{audit_only, audited, db};
use crate::secrets;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
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

fn locked(retry_after_secs: u64) -> ApiError {
    ApiError::TooManyRequests {
        code: "account_locked",
        message: "too many wrong passwords; the account is locked for a while".into(),
        retry_after_secs,
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
    if let Err(wait) = state
        .login_limiter
        .check(addr.as_deref().unwrap_or("unknown"))
    {
        return Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: "too many sign-in attempts from this address".into(),
            retry_after_secs: wait,
        });
    }
    let LoginRequest { login, password } = body.into_inner();
    let login = login.trim().to_lowercase();
    if login.is_empty() || login.len() > 64 || password.len() > 1024 {
        return Err(invalid_credentials());
    }
    let attempt = NewEntry {
        actor_login: Some(login.clone()),
        action: "auth.login".into(),
        object_type: "session".into(),
        outcome: "ok".into(),
        client_addr: addr.clone(),
        ..Default::default()
    };

    let lookup_login = login.clone();
    let user = db(&state, move |conn| {
        Ok(users::find_by_login(conn, &lookup_login)?)
    })
    .await?;
    let now = models::now();
    let user = match user {
        Some(user) if user.locked_until.is_some_and(|until| until > now) => {
            let wait = (user.locked_until.unwrap_or(now) - now)
                .num_seconds()
                .max(1);
            let entry = NewEntry {
                actor_id: Some(user.id),
                outcome: "account_locked".into(),
                ..attempt
            };
            audit_only(&state, entry).await?;
            return Err(locked(u64::try_from(wait).unwrap_or(1)));
        }
        other => other,
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
            let mut entry = NewEntry {
                outcome: "invalid_credentials".into(),
                ..attempt
            };
            if let Some(user) = user.filter(|u| u.active) {
                entry.actor_id = Some(user.id);
                let threshold = state.settings.lockout_threshold;
                let lock_until = now
                    + Duration::from_std(state.settings.lockout_duration)
                        .map_err(ApiError::internal)?;
                let locked_now = audited(&state, entry, move |conn, entry| {
                    let user = users::find(conn, user.id)?;
                    let locked = users::record_failed_login(conn, &user, threshold, lock_until)?;
                    if locked {
                        entry.details = Some(r#"{"locked":true}"#.into());
                    }
                    Ok(locked)
                })
                .await?;
                if locked_now {
                    tracing::warn!(user_id = user.id, "account locked after repeated failures");
                }
            } else {
                audit_only(&state, entry).await?;
            }
            return Err(invalid_credentials());
        }
    };

    let session_id = secrets::random_hex::<16>().map_err(ApiError::internal)?;
    let ttl = Duration::from_std(state.settings.session_ttl).map_err(ApiError::internal)?;
    let expires_at = now + ttl;
    let entry = NewEntry {
        actor_id: Some(user.id),
        object_id: Some(session_id[..8].to_string()),
        ..attempt
    };
    let sid = session_id.clone();
    audited(&state, entry, move |conn, _| {
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
