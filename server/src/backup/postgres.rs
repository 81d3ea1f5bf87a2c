//! Backup and restore of a PostgreSQL database, with PostgreSQL's own `pg_dump` and
//! `pg_restore` (installed with the client tools).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};

use super::{Contents, Restored, TempFile};
use crate::db::{self, DatabaseUrl, DbConn};

/// Dumps the database into the empty file `into` (pg_dump's custom format), from the same
/// snapshot whose audit chain is verified and counted here.
pub(super) fn dump(url: &str, into: &Path) -> anyhow::Result<Contents> {
    let target = Target::parse(url)?;
    let mut conn = connect(url)?;
    let contents = conn.transaction::<_, anyhow::Error, _>(|conn| {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let snapshot = export_snapshot(conn)?;
        let contents = super::inspect(conn).context("the database would not restore")?;
        target.run(
            "pg_dump",
            &[
                "--format=custom".as_ref(),
                "--snapshot".as_ref(),
                snapshot.as_ref(),
                "--file".as_ref(),
                into.as_os_str(),
                "--dbname".as_ref(),
                target.conninfo.as_ref(),
            ],
        )?;
        Ok(contents)
    })?;
    archive_entries(into, &target).context("pg_dump's archive cannot be read back")?;
    Ok(contents)
}

/// Restores the archive `file` into the database, which must be empty, then checks it and
/// records the restore; a restore that fails its checks is taken out again. What is checked
/// and restored is a private copy in the data directory: the file itself could be changed
/// between its check and pg_restore's reading of it.
pub(super) fn restore(
    url: &str,
    file: &Path,
    data_dir: &Path,
    verifier: &super::Verifier,
) -> anyhow::Result<Restored> {
    let target = Target::parse(url)?;
    crate::secrets::create_private_dir(data_dir)?;
    let copy = TempFile::create_beside(&data_dir.join("restore.dump"))?;
    super::copy_into(file, copy.path())?;
    let checked = super::checked(copy.path(), file, verifier)?;
    let backup = file;
    let file = copy.path();
    archive_entries(file, &target).context("it is not a readable pg_dump archive")?;
    let mut conn = connect(url)?;
    // Holding the migration lock: a server started meanwhile waits, then finds it restored.
    let contents = db::with_migration_lock(&mut conn, |conn| {
        refuse_unless_empty(conn)?;
        // One transaction: a damaged archive leaves the database as empty as it was.
        target.run(
            "pg_restore",
            &[
                "--no-owner".as_ref(),
                "--single-transaction".as_ref(),
                "--exit-on-error".as_ref(),
                "--dbname".as_ref(),
                target.conninfo.as_ref(),
                file.as_os_str(),
            ],
        )?;
        super::check_and_record(conn, backup, &checked, None).or_else(|refused| {
            empty_public_schema(conn)
                .context("and the restored tables could not be dropped again: drop the database")
                .map_err(|e| e.context(format!("{refused:#}")))?;
            Err(refused)
        })
    })?;
    Ok(Restored {
        checked,
        kept_as: None,
        contents,
    })
}

/// A connection (the caller's message names the database).
fn connect(url: &str) -> anyhow::Result<DbConn> {
    DatabaseUrl::Postgres(url.to_string())
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot connect: {e}"))
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

fn export_snapshot(conn: &mut DbConn) -> anyhow::Result<String> {
    let DbConn::Pg(pg) = conn else {
        anyhow::bail!("not a PostgreSQL connection");
    };
    Ok(diesel::sql_query("SELECT pg_export_snapshot() AS name")
        .get_result::<Name>(pg)?
        .name)
}

/// Refuses a database with anything of its own in the schema `public` (a restore goes into a
/// new, empty database, and [`empty_public_schema`] may then drop whatever is there).
fn refuse_unless_empty(conn: &mut DbConn) -> anyhow::Result<()> {
    let DbConn::Pg(pg) = conn else {
        anyhow::bail!("not a PostgreSQL connection");
    };
    let found: Vec<String> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
         UNION ALL SELECT p.proname::text FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' \
         ORDER BY 1 LIMIT 3",
    )
    .load::<Name>(pg)?
    .into_iter()
    .map(|n| n.name)
    .collect();
    if !found.is_empty() {
        anyhow::bail!(
            "the database is not empty (it holds {}, …): restore into a new one, made with \
             `createdb -T template0 NAME` (or CREATE DATABASE NAME TEMPLATE template0) and \
             named in PALREG_DATABASE_URL",
            found.join(", ")
        );
    }
    Ok(())
}

/// Drops what a restore created in the schema `public`, which was empty before it.
fn empty_public_schema(conn: &mut DbConn) -> anyhow::Result<()> {
    conn.batch_execute(
        "DO $$
         DECLARE drop_it text;
         BEGIN
           FOR drop_it IN
             SELECT format('DROP TABLE IF EXISTS public.%I CASCADE', tablename)
               FROM pg_tables WHERE schemaname = 'public'
             UNION ALL
             SELECT format('DROP VIEW IF EXISTS public.%I CASCADE', viewname)
               FROM pg_views WHERE schemaname = 'public'
           LOOP EXECUTE drop_it; END LOOP;
           FOR drop_it IN
             SELECT format('DROP SEQUENCE IF EXISTS public.%I CASCADE', sequencename)
               FROM pg_sequences WHERE schemaname = 'public'
             UNION ALL
             SELECT format('DROP FUNCTION IF EXISTS %s CASCADE', p.oid::regprocedure)
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'public'
           LOOP EXECUTE drop_it; END LOOP;
         END $$",
    )?;
    Ok(())
}

/// The entries of an archive's table of contents (and so, that pg_restore can read it).
fn archive_entries(file: &Path, target: &Target) -> anyhow::Result<usize> {
    let list = target.run("pg_restore", &["--list".as_ref(), file.as_os_str()])?;
    Ok(String::from_utf8_lossy(&list)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count())
}

/// How the PostgreSQL tools reach the database: the URL without its password, which goes in
/// their environment (`PGPASSWORD`) rather than on a command line that any local user can read.
struct Target {
    conninfo: String,
    password: Option<String>,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let mut parsed = url::Url::parse(url).context("invalid PostgreSQL URL")?;
        let mut password = parsed.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        if password.is_some() {
            parsed
                .set_password(None)
                .map_err(|()| anyhow::anyhow!("invalid PostgreSQL URL"))?;
        }
        // libpq also takes the password as a query parameter.
        let (secret, rest): (Vec<_>, Vec<_>) = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .partition(|(k, _)| k == "password");
        if let Some((_, value)) = secret.into_iter().next() {
            password = Some(value);
            parsed.set_query(None);
            if !rest.is_empty() {
                parsed.query_pairs_mut().extend_pairs(rest);
            }
        }
        Ok(Self {
            conninfo: parsed.into(),
            password,
        })
    }

    /// Runs a PostgreSQL tool and returns what it printed; a tool that is missing or fails is
    /// an error that names it, with what it said.
    fn run(&self, program: &str, args: &[&OsStr]) -> anyhow::Result<Vec<u8>> {
        let mut command = Command::new(program);
        command.args(args).stdin(Stdio::null());
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        let output = command.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "{program} was not found: install PostgreSQL's client tools (the package \
                 postgresql-client) of the server's major version or newer"
            ),
            _ => anyhow::anyhow!("cannot run {program}: {e}"),
        })?;
        if !output.status.success() {
            let mut said = String::from_utf8_lossy(&output.stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" / ");
            if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
                said = said.replace(password, "***");
            }
            anyhow::bail!("{program} failed ({}): {said}", output.status);
        }
        Ok(output.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_to_the_environment_not_the_command_line() {
        let target =
            Target::parse("postgres://palreg:p%40ss%2Fw@db:5432/palreg?connect_timeout=5").unwrap();
        assert_eq!(target.password.as_deref(), Some("p@ss/w"));
        assert_eq!(
            target.conninfo,
            "postgres://palreg@db:5432/palreg?connect_timeout=5"
        );
        let target = Target::parse("postgres://db/palreg?password=secret&sslmode=require").unwrap();
        assert_eq!(target.password.as_deref(), Some("secret"));
        assert_eq!(target.conninfo, "postgres://db/palreg?sslmode=require");
        let target = Target::parse("postgres://db/palreg").unwrap();
        assert_eq!(
            (target.password, target.conninfo.as_str()),
            (None, "postgres://db/palreg")
        );
    }

    #[test]
    fn a_missing_tool_is_named() {
        let target = Target::parse("postgres://db/palreg").unwrap();
        let err = target
            .run("palreg-no-such-pg-tool", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("palreg-no-such-pg-tool was not found"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_tool_is_named_with_what_it_said_but_not_the_password() {
        let target = Target::parse("postgres://u:hunter22@db/palreg").unwrap();
        let err = target
            .run(
                "sh",
                &[
                    "-c".as_ref(),
                    "echo \"auth failed for $PGPASSWORD\" >&2; exit 3".as_ref(),
                ],
            )
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sh failed (exit status: 3)"), "{err}");
        assert!(err.contains("auth failed for ***"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }
}
