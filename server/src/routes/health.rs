//! Liveness with a database check, for load balancers.

use actix_web::{HttpResponse, get, web};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::routes::db;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub version: &'static str,
}

/// 200 when the server can query its database.
#[utoipa::path(tag = "health", responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    db(&state, |conn| Ok(conn.batch_execute("SELECT 1")?)).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        database: state.settings.database_url.backend_name(),
        version: env!("CARGO_PKG_VERSION"),
    }))
}
