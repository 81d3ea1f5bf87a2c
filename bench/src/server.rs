//! The real server, started in the bench's own process: its settings parsed from its own flags
//! (so settings the server adds later take their defaults here), TLS off, a port of the OS's
//! choosing, on a thread of its own.

use std::path::{Path, PathBuf};

use actix_web::web;
use clap::Parser;
use palreg_server::config::{Settings, SettingsArgs};
use palreg_server::startup::Application;
use palreg_server::state::AppState;

/// The password of the first administrator of a bench database.
pub const ADMIN_PASSWORD: &str = "bench-admin-password-1";

/// The register a bench seeds, and where: the flags the benches share.
#[derive(clap::Args, Debug)]
pub struct RegisterFlags {
    /// Patients to seed.
    #[arg(long, default_value_t = 100_000)]
    pub patients: usize,
    /// Prescriptions to seed.
    #[arg(long, default_value_t = 500_000)]
    pub prescriptions: usize,
    /// Institutions the patients and prescriptions are spread over.
    #[arg(long, default_value_t = 20)]
    pub institutions: usize,
    /// `sqlite` (a file in the data directory) or `postgres` (needs --db-url).
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    /// Database URL (postgres://…, or sqlite://PATH to choose the file).
    #[arg(long)]
    pub db_url: Option<String>,
}

impl RegisterFlags {
    /// Refuses sizes the seeding cannot spread: every institution needs a patient.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.institutions >= 1 && self.patients >= self.institutions,
            "need at least one patient per institution"
        );
        Ok(())
    }

    /// The server's settings for this register's database (see [`settings`]).
    pub fn settings(
        &self,
        data_dir: &Path,
        workers: usize,
        extra: &[&str],
    ) -> anyhow::Result<Settings> {
        settings(
            &self.backend,
            self.db_url.as_deref(),
            data_dir,
            workers,
            extra,
        )
    }
}

#[derive(Parser, Debug)]
struct ServerFlags {
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Where a bench keeps its database and secrets: `keep`, or a temporary directory (removed with
/// the returned guard).
pub fn data_dir(keep: Option<&Path>) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let temp = tempfile::tempdir()?;
    let dir = match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.to_path_buf()
        }
        None => temp.path().to_path_buf(),
    };
    Ok((temp, dir))
}

/// The server's settings for a bench: the database (`db_url`, or a SQLite file in `data_dir`),
/// `workers` worker threads, and any `extra` flags of `palreg serve`.
pub fn settings(
    backend: &str,
    db_url: Option<&str>,
    data_dir: &Path,
    workers: usize,
    extra: &[&str],
) -> anyhow::Result<Settings> {
    let url = match (backend, db_url) {
        (_, Some(url)) => url.to_string(),
        ("sqlite", None) => format!("sqlite://{}", data_dir.join("palreg.db").display()),
        (other, None) => anyhow::bail!("--backend {other} needs --db-url"),
    };
    let data = data_dir.to_string_lossy();
    let no_web = data_dir.join("no-web");
    let no_web = no_web.to_string_lossy();
    let workers = workers.to_string();
    let mut argv = vec![
        "palreg",
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "off",
        "--data-dir",
        &data,
        "--jwt-secret",
        "bench-secret-bench-secret-bench-secret-0123",
        "--admin-password",
        ADMIN_PASSWORD,
        "--session-minutes",
        "1440",
        "--login-rate-per-minute",
        "10000",
        "--workers",
        &workers,
        "--web-dir",
        &no_web,
    ];
    argv.extend_from_slice(extra);
    ServerFlags::try_parse_from(argv)?
        .settings
        .validate()
        .map_err(|e| anyhow::anyhow!(e))
}

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Starts the server with `extra` routes on the same `HttpServer` (same-run baselines).
    pub fn start<F>(settings: Settings, extra: F) -> anyhow::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig, &web::Data<AppState>) + Clone + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build_with(settings, extra) {
                    Ok(app) => {
                        let _ = tx.send(Ok((app.port(), app.handle())));
                        if let Err(e) = app.run_until_stopped().await {
                            eprintln!("server stopped: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let (port, handle) = rx.recv()??;
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            handle,
            thread,
        })
    }

    /// Stops the server gracefully and waits for its thread.
    pub fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        let _ = self.thread.join();
    }
}
