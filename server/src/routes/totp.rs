//! The caller's second factor: an authenticator app's time-based codes ([`crate::totp`]).
//!
//! Enrolment takes two steps, so that a secret that never reached the phone cannot lock anyone
//! out: `POST /api/v1/me/totp` makes a secret (shown once, as a QR code and as text), and
//! `POST /api/v1/me/totp/confirm` turns it on with the first code the app shows. From then on
//! signing in needs a code as well as the password. A role may require a second factor
//! (`require_totp`): its holders without one can, once signed in, do nothing but enrol.

use actix_web::{HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::db::DbConn;
use crate::db::models::audit::NewEntry;
use crate::db::models::{self, totp as enrolments, users};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::auth::{account_locked, count_failure};
use crate::routes::{audit_only, audited, db};
use crate::secrets;
use crate::state::AppState;
use crate::totp::{self, TotpKey};

/// The second factor's status, as `/me` and the confirmation answer it.
pub use crate::db::models::sessions::SecondFactor as TotpStatus;

/// A new secret, shown once: scan `qr` (or type `secret`) into an authenticator app, then
/// confirm with its first code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// The `otpauth://` address the QR code holds.
    pub uri: String,
    /// The QR code of `uri`, row by row: `1` a dark module, `0` a light one (draw it with a
    /// light border of 4 modules).
    pub qr: Vec<String>,
}

/// A code from the authenticator app.
#[derive(Deserialize, ToSchema)]
pub struct TotpCode {
    /// Six digits (spaces are ignored).
    pub code: String,
}

pub fn status(conn: &mut DbConn, user_id: i64) -> ApiResult<TotpStatus> {
    Ok(TotpStatus {
        enabled: enrolments::find(conn, user_id)?.is_some_and(|e| e.confirmed()),
        required: enrolments::required_for(conn, user_id)?,
    })
}

fn invalid_code() -> ApiError {
    ApiError::unprocessable(
        "invalid_totp",
        "the code is not the authenticator's current one (or was used already)",
    )
}

/// The secret of an enrolment. Not opening means the data directory's `totp.key` is not the
/// one it was sealed with: an operator's error, reported as such.
pub fn open_secret(key: &TotpKey, user_id: i64, sealed: &str) -> ApiResult<Vec<u8>> {
    key.open(user_id, sealed).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "the second-factor secret of user {user_id} does not open with this totp.key"
        ))
    })
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Starts enrolling an authenticator: a new secret, shown once. Starting again replaces a
/// secret not yet confirmed.
#[utoipa::path(
    tag = "me",
    responses(
        (status = 201, body = TotpEnrolment),
        (status = 401, body = ErrorBody),
        (status = 409, description = "A second factor is already on", body = ErrorBody),
    )
)]
#[post("/api/v1/me/totp")]
pub async fn enrol(state: web::Data<AppState>, principal: Principal) -> ApiResult<HttpResponse> {
    let user_id = principal.user_id;
    let secret = secrets::random_bytes::<{ totp::SECRET_LEN }>().map_err(ApiError::internal)?;
    let sealed = state
        .totp_key
        .seal(user_id, &secret)
        .map_err(ApiError::internal)?;
    let uri = totp::otpauth_uri(&principal.login, &secret);
    let qr = totp::qr_rows(&uri).map_err(ApiError::internal)?;
    let entry = principal.audit("me.totp.enrol", "user", Some(user_id.to_string()));
    audited(&state, entry, move |conn, _| {
        if enrolments::find(conn, user_id)?.is_some_and(|e| e.confirmed()) {
            return Err(ApiError::conflict(
                "totp_already_enabled",
                "a second factor is already on; remove it first to enrol another",
            ));
        }
        enrolments::start(conn, user_id, &sealed, models::now())?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Created().json(TotpEnrolment {
        secret: totp::base32(&secret),
        uri,
        qr,
    }))
}

/// Turns the enrolled authenticator on with its current code.
#[utoipa::path(
    tag = "me",
    request_body = TotpCode,
    responses(
        (status = 200, body = TotpStatus),
        (status = 401, body = ErrorBody),
        (status = 409, description = "No enrolment waits for a code", body = ErrorBody),
        (status = 422, description = "Not the current code", body = ErrorBody),
    )
)]
#[post("/api/v1/me/totp/confirm")]
pub async fn confirm(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<TotpCode>,
) -> ApiResult<web::Json<TotpStatus>> {
    let user_id = principal.user_id;
    let code = body.into_inner().code;
    let entry = principal.audit("me.totp.confirm", "user", Some(user_id.to_string()));
    let state_in = state.clone();
    let status = audited(&state, entry, move |conn, _| {
        let enrolment = enrolments::find(conn, user_id)?
            .filter(|e| !e.confirmed())
            .ok_or_else(|| {
                ApiError::conflict(
                    "no_totp_enrolment",
                    "no enrolment waits for a code: start one first",
                )
            })?;
        let secret = open_secret(&state_in.totp_key, user_id, &enrolment.sealed_secret)?;
        let step = totp::accept(&secret, &code, unix_now(), enrolment.last_step)
            .ok_or_else(invalid_code)?;
        enrolments::confirm(conn, user_id, step, models::now())?;
        status(conn, user_id)
    })
    .await?;
    Ok(web::Json(status))
}

/// Removes the caller's second factor. A confirmed one needs its current code (wrong codes count
/// toward the account's lockout, as at sign-in, and a locked account cannot remove it); none can
/// be removed while a role requires it.
#[utoipa::path(
    tag = "me",
    request_body = TotpCode,
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No second factor", body = ErrorBody),
        (status = 409, description = "A role requires a second factor", body = ErrorBody),
        (status = 422, description = "Not the current code", body = ErrorBody),
        (status = 429, description = "The account is locked", body = ErrorBody),
    )
)]
#[delete("/api/v1/me/totp")]
pub async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<TotpCode>,
) -> ApiResult<HttpResponse> {
    let user_id = principal.user_id;
    let code = body.into_inner().code;
    let entry = principal.audit("me.totp.remove", "user", Some(user_id.to_string()));
    let now = models::now();
    // Checked before the change, so that a wrong code can be counted against the account.
    let (enrolment, required, locked_until) = db(&state, move |conn| {
        Ok((
            enrolments::find(conn, user_id)?,
            enrolments::required_for(conn, user_id)?,
            users::find(conn, user_id)?.locked_until,
        ))
    })
    .await?;
    let refusal = match (&enrolment, locked_until) {
        (None, _) => Some(ApiError::NotFound),
        _ if required => Some(ApiError::conflict(
            "totp_required_by_role",
            "a role of this account requires a second factor",
        )),
        (_, Some(until)) if until > now => Some(account_locked(until, now)),
        _ => None,
    };
    if let Some(refusal) = refusal {
        audit_only(
            &state,
            NewEntry {
                outcome: refusal.code().to_string(),
                ..entry
            },
        )
        .await?;
        return Err(refusal);
    }
    let mut step = None;
    if let Some(enrolment) = enrolment.filter(|e| e.confirmed()) {
        let secret = open_secret(&state.totp_key, user_id, &enrolment.sealed_secret)?;
        step = totp::accept(&secret, &code, unix_now(), enrolment.last_step);
        if step.is_none() {
            let refused = NewEntry {
                outcome: "invalid_totp".into(),
                ..entry
            };
            count_failure(&state, refused, user_id, now).await?;
            return Err(invalid_code());
        }
    }
    audited(&state, entry, move |conn, _| {
        if let Some(step) = step
            && !enrolments::use_step(conn, user_id, step)?
        {
            return Err(invalid_code());
        }
        if enrolments::remove(conn, user_id)? {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
