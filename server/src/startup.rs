//! Builds the application: storage, secrets, TLS, and the one route table.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{App, HttpMessage, HttpResponse, web};

use crate::audit_queue::AuditQueue;
use crate::auth::{Principal, TokenKeys};
use crate::config::{Settings, TlsSettings};
use crate::db::{self, models};
use crate::error::{
    AccessDenied, ApiError, json_error_handler, path_error_handler, query_error_handler,
};
use crate::ratelimit::RateLimiter;
use crate::routes;
use crate::state::AppState;
use crate::{secrets, seed, tls};

/// A built server, bound to its port, ready to run.
pub struct Application {
    server: Server,
    port: u16,
    /// SQLite: held while the server lives, so that `palreg restore` refuses meanwhile.
    lock: Option<db::lock::DatabaseLock>,
    /// SHA-256 fingerprint of the TLS certificate, when TLS is on.
    pub tls_fingerprint: Option<String>,
    /// The periodic tidying up ([`crate::housekeeping`]), stopped with the server.
    housekeeping: crate::housekeeping::Running,
    /// SQLite: the thread that folds the audit spool into the log ([`crate::audit_spool`]).
    folding: Option<crate::audit_spool::Folding>,
}

/// Opens the database (migrating and seeding it) and returns the pool.
pub fn prepare_database(settings: &Settings) -> anyhow::Result<db::Pool> {
    let pool = db::open(
        &settings.database_url,
        settings.db_pool,
        settings.sqlite_caches,
    )?;
    let mut conn = pool.get()?;
    let seeded = seed::run(&mut conn, settings.admin_password.as_deref())?;
    if seeded.reference_rows > 0 {
        tracing::info!(rows = seeded.reference_rows, "reference books seeded");
    }
    if let Some(password) = &seeded.generated_admin_password {
        // Shown once, on the console only (not in the log).
        println!(
            "\n  The first administrator was created.\n  login: admin\n  password: {password}\n  Change it after signing in.\n"
        );
    } else if seeded.admin_created {
        println!("The first administrator `admin` was created with PALREG_ADMIN_PASSWORD.");
    }
    crate::housekeeping::tidy(&mut conn, models::now())?;
    // Fresh statistics for the query planner (cheap when nothing changed); the checkpointer
    // refreshes them every few seconds while the server runs.
    db::refresh_statistics(&mut conn)?;
    Ok(pool)
}

fn jwt_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    match &settings.jwt_secret {
        Some(secret) => Ok(secret.as_bytes().to_vec()),
        None => secrets::load_or_create(&settings.data_dir.join("jwt.key"), || {
            Ok(secrets::random_hex::<32>()?.into_bytes())
        }),
    }
}

/// The report-signing key, generated once into the data directory.
pub fn report_signing_key(settings: &Settings) -> anyhow::Result<palreg_reports::ReportSigningKey> {
    crate::secrets::create_private_dir(&settings.data_dir)?;
    let path = settings.data_dir.join("report-signing.key");
    palreg_reports::ReportSigningKey::load_or_generate(&path)
        .map_err(|e| anyhow::anyhow!("report signing key {}: {e}", path.display()))
}

/// The key that seals second-factor secrets, generated once into the data directory.
pub fn totp_key(settings: &Settings) -> anyhow::Result<crate::totp::TotpKey> {
    crate::secrets::create_private_dir(&settings.data_dir)?;
    crate::totp::TotpKey::load_or_create(&settings.data_dir.join("totp.key"))
}

/// Security headers on every response. The Content-Security-Policy allows the browser client's
/// own scripts and its WASM module, nothing inline and nothing from elsewhere.
fn security_headers(tls_on: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add(("Cache-Control", "no-store"))
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
             img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ));
    if tls_on {
        headers = headers.add(("Strict-Transport-Security", "max-age=31536000"));
    }
    headers
}

/// The one route table. A request is matched against the routes in this order, each pattern
/// with a path parameter by a regex run: the clinicians' register (reading a patient above
/// all, the most frequent request) comes before administration, reference books and keys, so
/// that its routes are found first (bench/README.md, twenty-eighth session).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(routes::health::healthz)
        .service(routes::auth::login)
        .service(routes::auth::logout)
        .service(routes::me::me)
        .service(routes::me::change_password)
        .service(routes::totp::enrol)
        .service(routes::totp::confirm)
        .service(routes::totp::renew_recovery_codes)
        .service(routes::totp::remove)
        .service(routes::patients::search_patients)
        .service(
            web::resource("/api/v1/patients/import")
                .app_data(
                    web::JsonConfig::default()
                        .limit(routes::patients::IMPORT_BODY_LIMIT)
                        .error_handler(json_error_handler),
                )
                .route(web::post().to(routes::patients::import_patients))
                // Another method gets the JSON 404 every other unknown route gets, not an
                // empty 405.
                .default_service(web::to(not_found)),
        )
        .service(routes::patients::create_patient)
        .service(routes::patients::get_patient)
        .service(routes::patients::update_patient)
        .service(routes::patients::patient_history)
        .service(routes::observations::create_observation)
        .service(routes::observations::list_observations)
        .service(routes::observations::pending_notes)
        .service(routes::observations::reseal_note)
        .service(routes::prescriptions::search_prescriptions)
        .service(routes::prescriptions::create_prescription)
        .service(routes::prescriptions::get_prescription)
        .service(routes::prescriptions::update_prescription)
        .service(routes::prescriptions::cancel_prescription)
        .service(routes::prescriptions::complete_prescription)
        .service(routes::prescriptions::prescription_history)
        .service(routes::admin_users::list_users)
        .service(routes::admin_users::create_user)
        .service(routes::admin_users::get_user)
        .service(routes::admin_users::update_user)
        .service(routes::admin_users::deactivate_user)
        .service(routes::admin_users::reset_totp)
        .service(routes::admin_roles::list_permissions)
        .service(routes::admin_roles::list_roles)
        .service(routes::admin_roles::create_role)
        .service(routes::admin_roles::update_role)
        .service(routes::admin_roles::delete_role)
        .service(routes::admin_audit::list_audit)
        .service(routes::refs::list_entries)
        .service(routes::refs::get_entry)
        .service(routes::refs::create_entry)
        .service(routes::refs::update_entry)
        .service(routes::refs::delete_entry)
        .service(routes::keys::put_public_key)
        .service(routes::keys::my_envelopes)
        .service(routes::keys::members)
        .service(routes::keys::create_key_version)
        .service(routes::keys::grant)
        .service(routes::keys::add_link)
        .service(routes::reports::prescription_report)
        .service(routes::reports::summary_pdf)
        .service(routes::reports::summary_json)
        .service(routes::reports::summary_fhir)
        .service(routes::reports::public_key)
        .service(routes::reports::issued_signature)
        .route(
            "/api/v1/openapi.json",
            web::get().to(|| async { HttpResponse::Ok().json(crate::openapi::document()) }),
        );
}

/// Records every request refused for lack of permission or scope, with the caller and route.
async fn audit_refusals(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let response = next.call(req).await?;
    if response
        .response()
        .extensions()
        .get::<AccessDenied>()
        .is_some()
    {
        let request = response.request();
        let principal = request.extensions().get::<Principal>().cloned();
        let state = request.app_data::<web::Data<AppState>>().cloned();
        if let (Some(principal), Some(state)) = (principal, state) {
            let route = format!(
                "{} {}",
                request.method(),
                request
                    .match_pattern()
                    .unwrap_or_else(|| request.path().to_string())
            );
            let mut entry = principal.audit("access.denied", "route", Some(route));
            entry.outcome = "forbidden".into();
            if let Err(e) = routes::audit_only(&state, entry).await {
                tracing::error!(error = %e, "cannot audit a refused request");
            }
        }
    }
    Ok(response)
}

/// Caching: nothing from the API is stored anywhere; the browser client's files are kept but
/// revalidated (ETag) on every load, so a new release takes effect at once.
async fn cache_policy(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let is_static = !req.path().starts_with("/api/") && req.path() != "/healthz";
    let mut response = next.call(req).await?;
    let value = if is_static && response.status().is_success() {
        "no-cache"
    } else {
        "no-store"
    };
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static(value),
    );
    Ok(response)
}

/// Says, at start, which of `paths` other local accounts may read or enter: a database or a
/// data directory made before palreg created them for their owner alone (0600 and 0700) keeps
/// its mode, and holds password hashes, sealed second-factor secrets and the audit log.
fn warn_if_readable_by_others(paths: &[&std::path::Path]) {
    #[cfg(unix)]
    for path in paths {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let private = if meta.is_dir() { "700" } else { "600" };
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "readable by other local accounts: chmod {private} {} (and its -wal and -shm files)",
                path.display()
            );
        }
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

impl Application {
    /// Prepares everything and binds the listener. Call inside an actix system.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, |_, _| {})
    }

    /// As [`Application::build`], with extra routes registered before the browser client
    /// (the benchmarks add their same-server baselines this way; `palreg serve` adds none).
    pub fn build_with<F>(settings: Settings, extra: F) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig, &web::Data<AppState>) + Clone + Send + 'static,
    {
        let lock = match &settings.database_url {
            db::DatabaseUrl::Sqlite(path) => Some(db::lock::DatabaseLock::try_acquire(path)?),
            db::DatabaseUrl::Postgres(_) => None,
        };
        let pool = prepare_database(&settings)?;
        if let db::DatabaseUrl::Sqlite(path) = &settings.database_url {
            warn_if_readable_by_others(&[path.as_path(), settings.data_dir.as_path()]);
        }
        let secret = jwt_secret(&settings)?;
        let report_key = report_signing_key(&settings)?;
        let totp_key = totp_key(&settings)?;
        let tls = tls::load(&settings.tls, &settings.data_dir)?;
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let body_limit = settings.body_limit;
        let keep_alive = settings.keep_alive;
        let workers = settings.workers;
        let tls_on = settings.tls != TlsSettings::Off;
        let web_dir = settings.web_dir.clone();
        match &web_dir {
            Some(dir) => tracing::info!(dir = %dir.display(), "serving the browser client"),
            None => {
                tracing::warn!("no browser client folder (PALREG_WEB_DIR): serving the API only")
            }
        }
        let write_gate = db::write_gate(&settings.database_url, settings.sqlite_caches.writer_mib)?;
        // Before anything is answered: folds what a crash left in the audit spool (SQLite).
        let audit = AuditQueue::open(&settings.database_url, pool.clone(), write_gate.clone())?;
        let reports = db::open_reports(&settings.database_url, settings.sqlite_caches)?;
        let state = web::Data::new(AppState {
            pool,
            reports,
            tokens: TokenKeys::new(&secret),
            report_key,
            totp_key,
            write_gate,
            audit,
            sessions: Default::default(),
            login_limiter: RateLimiter::new(
                settings.login_rate_per_minute,
                Duration::from_secs(60),
            ),
            settings: Arc::new(settings),
        });
        let housekeeping = crate::housekeeping::spawn(state.clone());
        let folding = state.audit.start_folding(state.settings.audit_fold_every);
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(body_limit)
                        .error_handler(json_error_handler),
                )
                .app_data(web::PayloadConfig::default().limit(body_limit))
                .app_data(web::QueryConfig::default().error_handler(query_error_handler))
                .app_data(web::PathConfig::default().error_handler(path_error_handler))
                .wrap(actix_web::middleware::from_fn(audit_refusals))
                .wrap(actix_web::middleware::from_fn(cache_policy))
                .wrap(security_headers(tls_on))
                // The client as the audit log names it (behind a trusted proxy, the one it
                // names), the method and the path without its query.
                .wrap(
                    Logger::new("%{client}xi \"%{method}xi %U\" %s %b %Dms")
                        .custom_request_replace("client", |req| {
                            crate::auth::client_addr(req.request()).unwrap_or_else(|| "-".into())
                        })
                        .custom_request_replace("method", |req| req.method().to_string()),
                )
                .configure(routes)
                .configure(|cfg| extra(cfg, &state))
                .configure(|cfg| {
                    if let Some(dir) = &web_dir {
                        cfg.service(
                            actix_files::Files::new("/", dir)
                                .index_file("index.html")
                                .default_handler(web::to(not_found)),
                        );
                    }
                })
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .keep_alive(keep_alive)
        .shutdown_timeout(10);
        let (server, tls_fingerprint) = match tls {
            Some(tls) => {
                if tls.generated {
                    println!("Generated a self-signed TLS certificate.");
                }
                (
                    server.listen_rustls_0_23(listener, tls.config)?.run(),
                    Some(tls.fingerprint),
                )
            }
            None => (server.listen(listener)?.run(), None),
        };
        Ok(Self {
            server,
            port,
            lock,
            tls_fingerprint,
            housekeeping,
            folding,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (tests).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _lock = self.lock;
        let _housekeeping = self.housekeeping;
        // Dropped after the server has stopped: folds the last entries of the audit spool.
        let _folding = self.folding;
        self.server.await
    }
}
