//! The caller's second factor: an authenticator app's time-based codes ([`crate::totp`]).
//!
//! Enrolment takes two steps, so that a secret that never reached the phone cannot lock anyone
//! out: `POST /api/v1/me/totp` makes a secret (shown once, as a QR code and as text), and
//! `POST /api/v1/me/totp/confirm` turns it on with the first code the app shows. From then on
//! signing in needs a code as well as the password. A role may require a second factor
//! (`require_totp`): its holders without one can, once signed in, do nothing but enrol.
//!
//! Confirming also makes ten one-time recovery codes, shown once in the answer: each signs in
//! once in place of the app's code (a lost phone, at night, with no administrator about).
//! `POST /api/v1/me/totp/recovery-codes` makes a new set (the old one stops working); `/me`
//! says how many are left.

use actix_web::{HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::db::DbConn;
use crate::db::models::audit::NewEntry;
use crate::db::models::sessions::SecondFactor;
use crate::db::models::totp::Enrolment;
use crate::db::models::{self, totp as enrolments, users};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::auth::{account_locked, count_attempt, refuse_attempt};
use crate::routes::{audit_only, audited, db, write};
use crate::secrets;
use crate::state::AppState;
use crate::totp::{self, TotpKey};

/// The second factor's status, as `/me` and the confirmation answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct TotpStatus {
    /// A confirmed authenticator: signing in asks for its code (or a recovery code).
    pub enabled: bool,
    /// A role of the account requires a second factor (it cannot be removed then).
    pub required: bool,
    /// Recovery codes not used yet (0 without a second factor): when few are left, make new
    /// ones (`POST /api/v1/me/totp/recovery-codes`).
    pub recovery_codes_left: i64,
}

impl TotpStatus {
    /// The status the session check read, with the recovery codes left counted (only when the
    /// second factor is on: the session check itself never counts them).
    pub fn of(conn: &mut DbConn, user_id: i64, second_factor: SecondFactor) -> ApiResult<Self> {
        let recovery_codes_left = if second_factor.enabled {
            enrolments::recovery_codes_left(conn, user_id)?
        } else {
            0
        };
        Ok(Self {
            enabled: second_factor.enabled,
            required: second_factor.required,
            recovery_codes_left,
        })
    }
}

/// A new set of recovery codes, shown only in this answer (the server keeps a keyed hash of
/// each), and the second factor's status.
#[derive(Serialize, ToSchema)]
pub struct TotpRecoveryCodes {
    /// Ten one-time codes, `xxxxx-xxxxx` (digits and lower-case letters; case, dashes and spaces
    /// do not matter when typed). Each signs in once in place of the authenticator's code, in
    /// the sign-in's `totp` field. Any earlier set no longer works.
    pub recovery_codes: Vec<String>,
    #[serde(flatten)]
    pub status: TotpStatus,
}

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

/// Stores a new set of recovery codes of a confirmed second factor (any earlier set goes), and
/// answers the status: on, with exactly these codes left.
fn store_recovery_codes(
    conn: &mut DbConn,
    user_id: i64,
    hashes: &[String],
    now: chrono::NaiveDateTime,
) -> ApiResult<TotpStatus> {
    enrolments::replace_recovery_codes(conn, user_id, hashes, now)?;
    Ok(TotpStatus {
        enabled: true,
        required: enrolments::required_for(conn, user_id)?,
        recovery_codes_left: hashes.len() as i64,
    })
}

/// A new set of recovery codes: as shown to the user, and as hashed for the database.
fn fresh_recovery_codes(key: &TotpKey, user_id: i64) -> ApiResult<(Vec<String>, Vec<String>)> {
    let codes = totp::new_recovery_codes().map_err(ApiError::internal)?;
    let hashes = codes
        .iter()
        .filter_map(|code| totp::normalize_recovery_code(code))
        .map(|code| key.recovery_hash(user_id, &code))
        .collect::<Vec<_>>();
    if hashes.len() != codes.len() {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a generated recovery code does not read back as one"
        )));
    }
    Ok((codes, hashes))
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

/// The caller's enrolment, whether a role requires one, and until when the account is locked:
/// read before a change that needs the current code, so that a wrong one can be counted.
async fn before_change(
    state: &web::Data<AppState>,
    user_id: i64,
) -> ApiResult<(Option<Enrolment>, bool, Option<chrono::NaiveDateTime>)> {
    db(state, move |conn| {
        Ok((
            enrolments::find(conn, user_id)?,
            enrolments::required_for(conn, user_id)?,
            users::find(conn, user_id)?.locked_until,
        ))
    })
    .await
}

/// Audits a refusal (with its code as the outcome) and returns it.
async fn refuse<T>(
    state: &web::Data<AppState>,
    entry: NewEntry,
    refusal: ApiError,
) -> ApiResult<T> {
    audit_only(
        state,
        NewEntry {
            outcome: refusal.code().to_string(),
            ..entry
        },
    )
    .await?;
    Err(refusal)
}

/// The step of the authenticator's current `code` for a confirmed enrolment. The attempt counts
/// toward the account's lockout before the code is checked, as at sign-in; a right code clears
/// the count.
async fn check_code(
    state: &web::Data<AppState>,
    entry: &NewEntry,
    user_id: i64,
    enrolment: &Enrolment,
    code: &str,
    now: chrono::NaiveDateTime,
) -> ApiResult<i64> {
    let secret = open_secret(&state.totp_key, user_id, &enrolment.sealed_secret)?;
    let locks = count_attempt(state, entry, user_id, now).await?;
    if let Some(step) = totp::accept(&secret, code, unix_now(), enrolment.last_step) {
        // A right code forgets the attempts counted so far.
        write(state, move |conn| Ok(users::clear_failures(conn, user_id)?)).await?;
        return Ok(step);
    }
    let refused = NewEntry {
        outcome: "invalid_totp".into(),
        ..entry.clone()
    };
    refuse_attempt(state, refused, user_id, locks).await?;
    Err(invalid_code())
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

/// Turns the enrolled authenticator on with its current code. The answer carries the first
/// set of recovery codes: shown this once.
#[utoipa::path(
    tag = "me",
    request_body = TotpCode,
    responses(
        (status = 200, body = TotpRecoveryCodes),
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
) -> ApiResult<web::Json<TotpRecoveryCodes>> {
    let user_id = principal.user_id;
    let code = body.into_inner().code;
    let entry = principal.audit("me.totp.confirm", "user", Some(user_id.to_string()));
    let (recovery_codes, hashes) = fresh_recovery_codes(&state.totp_key, user_id)?;
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
        let now = models::now();
        enrolments::confirm(conn, user_id, step, now)?;
        store_recovery_codes(conn, user_id, &hashes, now)
    })
    .await?;
    Ok(web::Json(TotpRecoveryCodes {
        recovery_codes,
        status,
    }))
}

/// Makes a new set of recovery codes (shown this once; the earlier set stops working), with the
/// authenticator's current code. Wrong codes count toward the account's lockout, as at sign-in.
#[utoipa::path(
    tag = "me",
    request_body = TotpCode,
    responses(
        (status = 200, body = TotpRecoveryCodes),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No second factor", body = ErrorBody),
        (status = 422, description = "Not the current code", body = ErrorBody),
        (status = 429, description = "The account is locked", body = ErrorBody),
    )
)]
#[post("/api/v1/me/totp/recovery-codes")]
pub async fn renew_recovery_codes(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<TotpCode>,
) -> ApiResult<web::Json<TotpRecoveryCodes>> {
    let user_id = principal.user_id;
    let code = body.into_inner().code;
    let entry = principal.audit("me.totp.recovery_codes", "user", Some(user_id.to_string()));
    let now = models::now();
    let (enrolment, _, _) = before_change(&state, user_id).await?;
    let Some(enrolment) = enrolment.filter(|e| e.confirmed()) else {
        return refuse(&state, entry, ApiError::NotFound).await;
    };
    // A locked account is refused (429) where the code is counted.
    let step = check_code(&state, &entry, user_id, &enrolment, &code, now).await?;
    let (recovery_codes, hashes) = fresh_recovery_codes(&state.totp_key, user_id)?;
    let status = audited(&state, entry, move |conn, _| {
        if !enrolments::use_step(conn, user_id, step)? {
            return Err(invalid_code());
        }
        store_recovery_codes(conn, user_id, &hashes, now)
    })
    .await?;
    Ok(web::Json(TotpRecoveryCodes {
        recovery_codes,
        status,
    }))
}

/// Removes the caller's second factor and its recovery codes. A confirmed one needs its current
/// code (wrong codes count toward the account's lockout, as at sign-in, and a locked account
/// cannot remove it); none can be removed while a role requires it.
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
    let (enrolment, required, locked_until) = before_change(&state, user_id).await?;
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
        return refuse(&state, entry, refusal).await;
    }
    let mut step = None;
    if let Some(enrolment) = enrolment.filter(|e| e.confirmed()) {
        step = Some(check_code(&state, &entry, user_id, &enrolment, &code, now).await?);
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
