//! What every handler shares.

use std::sync::Arc;

use crate::auth::TokenKeys;
use crate::config::Settings;
use crate::db::Pool;
use crate::ratelimit::RateLimiter;

pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub tokens: TokenKeys,
    pub login_limiter: RateLimiter,
}
