//! The `palreg` command line: serve, migrate, user administration, backup and restore, audit
//! verification.

use clap::{Parser, Subcommand};
use diesel::Connection;

use crate::config::{Settings, SettingsArgs};
use crate::db::DbConn;
use crate::db::models::{self, audit, rbac, refs, users};
use crate::domain::{FullName, Login, NewPassword};
use crate::startup::{self, Application};

#[derive(Parser, Debug)]
#[command(
    name = "palreg",
    version,
    about = "The encrypted register of palliative-care patients"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the server (migrating and seeding the database first).
    Serve,
    /// Applies pending migrations and seeds an empty database, then exits.
    Migrate,
    /// Manages user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Writes a backup of the database to FILE (which must not exist) and checks it: on SQLite
    /// a consistent copy, safe while the server runs; on PostgreSQL a pg_dump archive. Its
    /// SHA-256 goes to FILE.sha256, signed in FILE.sig by the data directory's backup key.
    Backup { file: std::path::PathBuf },
    /// Replaces the database with the backup in FILE, after checking it (its checksum, and its
    /// signature with the data directory's backup key or --public-key). SQLite: the server must
    /// be stopped; the replaced database is kept beside it. PostgreSQL: into an empty database.
    Restore {
        file: std::path::PathBuf,
        /// The backup key's public half (base64 or PEM, as `palreg backup` printed it), for a
        /// restore on a machine that does not hold the key.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// Restores a backup whose signature cannot be checked (one made before backups were
        /// signed, or whose key is lost). A signature that does not match is refused anyway.
        #[arg(long)]
        unsigned: bool,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Institution key versions (the keys themselves never reach the server).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Checks a report against its detached signature, offline: exits 0 when the file is
    /// exactly what this server (or the holder of `--public-key`) signed.
    VerifyReport {
        /// The report (PDF, JSON or FHIR JSON).
        file: std::path::PathBuf,
        /// Its `.sig` file (or a file holding the base64 signature).
        sig: std::path::PathBuf,
        /// The server's public key (base64 or PEM, from GET /api/v1/reports/public-key).
        /// Default: the key in this server's data directory.
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Registers a user. The password comes from PALREG_NEW_USER_PASSWORD, or is generated and
    /// printed once.
    Create {
        #[arg(long)]
        login: String,
        #[arg(long)]
        full_name: String,
        /// A role name; repeat for several (default: user).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The institution's code (omit for a region-wide user such as the ministry).
        #[arg(long)]
        institution: Option<String>,
        #[arg(long, env = "PALREG_NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Lists users.
    List,
    /// De-registers a user: it can no longer sign in and its sessions end at once.
    Deactivate { login: String },
    /// Removes a user's second factor (a lost phone; the last administrator's too): the user
    /// signs in with the password alone and enrols again.
    ResetTotp { login: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Withdraws an institution's newest key version and every envelope of it: for a version
    /// the clients refuse (its link does not verify: it was planted, not rotated). Refused while
    /// any passport or note is sealed under it. The version before it becomes the current one
    /// again. Not for a genuine version: clients that trusted it remember its fingerprint and
    /// would refuse another key under the same number.
    Withdraw {
        /// The institution's code.
        #[arg(long)]
        institution: String,
        /// The version to withdraw: the newest one.
        #[arg(long)]
        version: i32,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Checks the hash chain; exits non-zero naming the first bad entry.
    Verify,
}

fn user_by_login(conn: &mut DbConn, login: &str) -> anyhow::Result<users::User> {
    let login = Login::parse(login).map_err(|e| anyhow::anyhow!("{e}"))?;
    users::find_by_login(conn, login.as_str())?
        .ok_or_else(|| anyhow::anyhow!("no user {}", login.as_str()))
}

/// Runs an administrator's change to a user from the command line, with its audit entry (actor
/// `cli`), in one transaction.
fn audited_by_cli<T>(
    conn: &mut DbConn,
    action: &str,
    user_id: i64,
    change: impl FnOnce(&mut DbConn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    audited_change_by_cli(conn, action, ("user", user_id.to_string()), change)
}

/// Runs a change from the command line with its audit entry (actor `cli`, the object given),
/// in one transaction.
fn audited_change_by_cli<T>(
    conn: &mut DbConn,
    action: &str,
    (object_type, object_id): (&str, String),
    change: impl FnOnce(&mut DbConn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    conn.transaction::<_, anyhow::Error, _>(|conn| {
        let place = audit::reserve(conn)?;
        let value = change(conn)?;
        audit::complete(
            conn,
            place,
            audit::NewEntry {
                actor_login: Some("cli".into()),
                action: action.into(),
                object_type: object_type.into(),
                object_id: Some(object_id),
                outcome: "ok".into(),
                ..Default::default()
            },
        )?;
        Ok(value)
    })
}

/// Runs a parsed command; the exit code comes back.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let settings = cli.settings.validate().map_err(|e| anyhow::anyhow!(e))?;
    match cli.command {
        Command::Serve => serve(settings),
        Command::Migrate => {
            open_database(&settings)?;
            println!(
                "database {} is up to date",
                settings.database_url.redacted()
            );
            Ok(0)
        }
        Command::User(cmd) => user(settings, cmd),
        Command::Keys(KeysCommand::Withdraw {
            institution,
            version,
        }) => withdraw_key_version(&settings, &institution, version),
        Command::Backup { file } => {
            crate::backup::backup(&settings.database_url, &file, &settings.data_dir)?;
            Ok(0)
        }
        Command::Restore {
            file,
            public_key,
            unsigned,
        } => {
            let trust = crate::backup::Trust {
                public_key,
                unsigned,
            };
            crate::backup::restore(&settings.database_url, &file, &settings.data_dir, &trust)?;
            Ok(0)
        }
        Command::VerifyReport {
            file,
            sig,
            public_key,
        } => {
            let report =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let signature = std::fs::read_to_string(&sig)
                .map_err(|e| anyhow::anyhow!("{}: {e}", sig.display()))?;
            let key = match public_key {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                None => startup::report_signing_key(&settings)?
                    .public_key()
                    .to_base64(),
            };
            match palreg_reports::verify_file(&report, &signature, &key) {
                Ok(()) => {
                    println!("OK: {} is authentic and whole", file.display());
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("FAILED: {}: {e}", file.display());
                    Ok(1)
                }
            }
        }
        Command::Audit(AuditCommand::Verify) => {
            let pool = open_database(&settings)?;
            let mut conn = pool.get()?;
            // One snapshot: a server appending meanwhile would otherwise move the head past
            // the last entry read, and an intact log would be reported broken.
            let verified = crate::db::in_snapshot(&mut conn, |conn| {
                Ok::<_, diesel::result::Error>((audit::verify(conn)?, audit::head(conn)?))
            })?;
            match verified {
                (Ok(count), (seq, hash)) => {
                    // The chain shows any entry edited or deleted, unless whoever changed it
                    // also recomputed every hash after it: the last entry's hash, kept away
                    // from this database, catches that too.
                    println!("audit log intact: {count} entries");
                    println!("last entry {seq}: {hash}");
                    Ok(0)
                }
                (Err(broken), _) => {
                    eprintln!("audit log BROKEN: {broken}");
                    Ok(1)
                }
            }
        }
    }
}

/// Opens the database for a command other than `serve`, migrating it first when this binary
/// brings migrations it lacks. On SQLite the schema never changes under a running server (say,
/// the old server still running when a new binary's `palreg user list` is tried): a command
/// that would migrate takes the server's lock for the time it migrates, and is refused while a
/// server (or a restore) holds it. Commands that need no migration run beside a server, as
/// SQLite lets them.
fn open_database(settings: &Settings) -> anyhow::Result<crate::db::Pool> {
    let _lock = match &settings.database_url {
        crate::db::DatabaseUrl::Sqlite(path)
            if crate::db::has_pending_migrations(&settings.database_url)? =>
        {
            Some(
                crate::db::lock::DatabaseLock::try_acquire(path).map_err(|e| {
                    anyhow::anyhow!(
                        "{e}. This palreg must first migrate the database, which it does not do \
                     under a running server: stop the server, then run `palreg migrate` (or \
                     start the new server)"
                    )
                })?,
            )
        }
        _ => None,
    };
    startup::prepare_database(settings)
}

fn serve(settings: Settings) -> anyhow::Result<i32> {
    let listen = settings.listen;
    let backend = settings.database_url.backend_name();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        let scheme = if app.tls_fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        if let Some(fp) = &app.tls_fingerprint {
            println!("TLS certificate SHA-256 fingerprint: {fp}");
        }
        println!("palreg is serving {scheme}://{listen} on {backend}");
        tracing::info!(%listen, backend, "serving");
        app.run_until_stopped().await?;
        Ok(0)
    })
}

fn withdraw_key_version(
    settings: &Settings,
    institution: &str,
    version: i32,
) -> anyhow::Result<i32> {
    let pool = open_database(settings)?;
    let mut conn = pool.get()?;
    let institution_id = refs::institution::find_by_code(&mut conn, institution)?
        .ok_or_else(|| anyhow::anyhow!("no institution with code {institution}"))?
        .id;
    let object = ("institution_key", format!("{institution_id}/{version}"));
    let envelopes = audited_change_by_cli(&mut conn, "keys.withdraw", object, |conn| {
        match models::keys::withdraw_newest(conn, institution_id, version)? {
            models::keys::Withdrawal::Done { envelopes } => Ok(envelopes),
            models::keys::Withdrawal::NotNewest(newest) => Err(anyhow::anyhow!(
                "version {version} is not the newest key version of {institution} (that is {})",
                newest.map_or_else(|| "none".to_string(), |v| v.to_string())
            )),
            models::keys::Withdrawal::InUse { passports, notes } => Err(anyhow::anyhow!(
                "{passports} passport(s) and {notes} note(s) are sealed under version {version}: \
                     it cannot be withdrawn without losing them"
            )),
        }
    })?;
    println!(
        "key version {version} of {institution} withdrawn with its {envelopes} envelope(s); \
         version {} is the current one",
        version - 1
    );
    Ok(0)
}

fn user(settings: Settings, cmd: UserCommand) -> anyhow::Result<i32> {
    let pool = open_database(&settings)?;
    let mut conn = pool.get()?;
    match cmd {
        UserCommand::Create {
            login,
            full_name,
            roles,
            institution,
            password,
        } => {
            let login = Login::parse(&login).map_err(|e| anyhow::anyhow!("{e}"))?;
            let full_name = FullName::parse(&full_name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (crate::secrets::random_hex::<12>()?, true),
            };
            let password = NewPassword::parse(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let roles = if roles.is_empty() {
                vec!["user".to_string()]
            } else {
                roles
            };
            let hash = crate::password::hash(password.expose())?;
            conn.transaction::<_, anyhow::Error, _>(|conn| {
                let place = audit::reserve(conn)?;
                let institution_id = match &institution {
                    Some(code) => Some(
                        refs::institution::find_by_code(conn, code)?
                            .ok_or_else(|| anyhow::anyhow!("no institution with code {code}"))?
                            .id,
                    ),
                    None => None,
                };
                let found = rbac::role_ids_by_name(conn, &roles)?;
                if found.len() != roles.len() {
                    anyhow::bail!("unknown role among {roles:?}");
                }
                let now = models::now();
                let id = users::insert(
                    conn,
                    &users::NewUser {
                        login: login.as_str(),
                        full_name: full_name.as_str(),
                        password_hash: &hash,
                        institution_id,
                        active: true,
                        failed_logins: 0,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let ids: Vec<i64> = found.into_iter().map(|(id, _)| id).collect();
                users::set_roles(conn, id, &ids)?;
                audit::complete(
                    conn,
                    place,
                    audit::NewEntry {
                        actor_login: Some("cli".into()),
                        action: "admin.user.create".into(),
                        object_type: "user".into(),
                        object_id: Some(id.to_string()),
                        outcome: "ok".into(),
                        ..Default::default()
                    },
                )?;
                Ok(())
            })?;
            println!("user {} created", login.as_str());
            if generated {
                println!("password: {}", password.expose());
            }
            Ok(0)
        }
        UserCommand::List => {
            for u in users::list(&mut conn, None, false)? {
                let roles: Vec<String> = users::role_names(&mut conn, &[u.id])?
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect();
                println!(
                    "{:>5}  {:<24} {:<8} institution={:<6} roles={}  {}",
                    u.id,
                    u.login,
                    if u.active { "active" } else { "inactive" },
                    u.institution_id.map_or("-".to_string(), |i| i.to_string()),
                    roles.join(","),
                    u.full_name
                );
            }
            Ok(0)
        }
        UserCommand::Deactivate { login } => {
            let user = user_by_login(&mut conn, &login)?;
            audited_by_cli(&mut conn, "admin.user.deactivate", user.id, |conn| {
                crate::routes::admin_users::deactivate(conn, user.id)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            println!("user {} de-registered", user.login);
            Ok(0)
        }
        UserCommand::ResetTotp { login } => {
            let user = user_by_login(&mut conn, &login)?;
            let removed = audited_by_cli(&mut conn, "admin.user.totp_reset", user.id, |conn| {
                Ok(crate::db::models::totp::remove(conn, user.id)?)
            })?;
            if removed {
                println!("user {}: second factor removed", user.login);
            } else {
                println!("user {} had no second factor", user.login);
            }
            Ok(0)
        }
    }
}
