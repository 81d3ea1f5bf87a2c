//! The command line: argument definitions and what each command does.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use client_crypto::Passport;
use serde_json::{Value, json};

use crate::api::{Api, PatientView};
use crate::config::{self, SavedSession};
use crate::csvfile::Encoding;
use crate::error::{Error, Result};
use crate::export::Separator;
use crate::http::{Trust, UreqTransport};
use crate::keys::{self, Clinic};
use crate::patients::{self, Query};
use crate::refs::Books;
use crate::row::{self, COLUMNS, Cells};
use crate::{export, import};

#[derive(Parser, Debug)]
#[command(
    name = "palreg-client",
    version,
    about = "palreg's native client: patients are encrypted here, never on the server"
)]
pub struct Cli {
    /// The palreg server, e.g. https://palreg.example:8443 (default: the one signed in to).
    #[arg(long, env = "PALREG_SERVER", global = true)]
    pub server: Option<String>,
    /// Trust this PEM certificate (e.g. a self-signed palreg server's `tls/cert.pem`).
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Trust the server whose certificate has this SHA-256 fingerprint (as the server prints it).
    #[arg(long, global = true)]
    pub insecure_tls_fingerprint: Option<String>,
    /// Your key file (passphrase-wrapped private key); default: key.json in the client folder.
    #[arg(long, env = "PALREG_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Read the key passphrase from this file's first line (else PALREG_KEY_PASSPHRASE, else a prompt).
    #[arg(long, global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Bits of the blind indexes; every clinician of an institution must use the same.
    #[arg(long, env = "PALREG_INDEX_BITS", global = true)]
    pub index_bits: Option<u8>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sign in; the session token is kept (mode 0600) in the client folder.
    Login {
        #[arg(long)]
        login: String,
        /// Read the password from this file (else PALREG_PASSWORD, else a prompt).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The authenticator app's current code, or one of the account's recovery codes
        /// (`xxxxx-xxxxx`, each signs in once), for an account with a second factor (else
        /// PALREG_TOTP, else a prompt when the server asks for one).
        #[arg(long, env = "PALREG_TOTP", hide_env_values = true)]
        totp: Option<String>,
    },
    /// Sign out here and on the server.
    Logout,
    /// Who is signed in.
    Whoami,
    /// Your key pair and your institution's key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Patients.
    #[command(subcommand)]
    Patient(Box<PatientCommand>),
    /// Prescriptions.
    #[command(subcommand)]
    Rx(RxCommand),
    /// Import patients from a CSV register (resumable; see the README for the format).
    Import {
        file: PathBuf,
        /// Patients per request, 1 to 5000 (the server's largest batch).
        #[arg(long, default_value_t = import::MAX_BATCH)]
        batch_size: usize,
        /// Bytes of one request's body, at most 24 MiB (under the server's 32 MiB): less for a
        /// proxy in front of it that allows less. A batch is closed before a patient that
        /// would take it over; a patient alone over it is still sent.
        #[arg(long, default_value_t = import::MAX_BATCH_BYTES)]
        batch_bytes: usize,
        /// The file's encoding: utf-8, or windows-1251 (cp1251), Excel's plain "CSV" on a
        /// Russian Windows. A file in the other one is refused, saying which to give.
        #[arg(long, default_value_t = Encoding::Utf8)]
        encoding: Encoding,
    },
    /// Export your institution's register, decrypted, to CSV (a new file: see --force).
    Export {
        file: PathBuf,
        /// Replace FILE if it exists (otherwise the export refuses to touch it).
        #[arg(long)]
        force: bool,
        /// utf-8 (with a byte-order mark, so that Excel shows Cyrillic), or windows-1251
        /// (cp1251): then a character it cannot hold fails the export, and nothing is written.
        #[arg(long, default_value_t = Encoding::Utf8)]
        encoding: Encoding,
        /// comma, or semicolon for Excel on a Russian Windows (which opens a comma-separated
        /// file as one column). The import reads either.
        #[arg(long, default_value_t = Separator::Comma)]
        separator: Separator,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key pair, write the key file, publish the public key.
    Init,
    /// Members, their fingerprints, who holds which key version; the fingerprint of each key
    /// version you hold and whether its key chain vouches for it.
    Status,
    /// Create the institution's first key (once per institution).
    Bootstrap,
    /// Give the institution key to a colleague, after comparing fingerprints (only versions
    /// whose key chain verifies are given).
    Grant {
        #[arg(long)]
        user: String,
        /// Do not ask to confirm the fingerprint (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Vouch for a key version made before versions were linked: shows its fingerprint to
    /// compare with the colleague who made it; with --yes, stores its link (made with the
    /// version before it).
    Link {
        /// The version to link to the one before it.
        #[arg(long)]
        version: u32,
        /// The fingerprint shown has been compared with the colleague who made the version,
        /// and matches.
        #[arg(long)]
        yes: bool,
    },
    /// Trust a key version nothing vouches for (`key_unpinned`, `key_chain_gap`): shows its
    /// fingerprint to compare with a colleague who holds it; with --yes, this client remembers
    /// it as trusted. Never for `key_changed` or `key_chain_broken` (tell your administrator).
    Trust {
        /// The version to trust.
        #[arg(long)]
        version: u32,
        /// The fingerprint shown has been compared with a colleague who holds the version, and
        /// matches.
        #[arg(long)]
        yes: bool,
    },
}

/// Passport and record fields; reference-book entries by code.
#[derive(Args, Debug, Default, Clone)]
pub struct PatientFields {
    #[arg(long)]
    pub surname: Option<String>,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub patronymic: Option<String>,
    /// YYYY-MM-DD or DD.MM.YYYY.
    #[arg(long)]
    pub dob: Option<String>,
    /// M or F (М or Ж).
    #[arg(long)]
    pub sex: Option<String>,
    #[arg(long)]
    pub snils: Option<String>,
    #[arg(long)]
    pub policy: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub address: Option<String>,
    /// ICD-10 code, e.g. C50.
    #[arg(long)]
    pub diagnosis: Option<String>,
    /// registered, discharged or deceased.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub registered_on: Option<String>,
    #[arg(long)]
    pub discharged_on: Option<String>,
    #[arg(long)]
    pub deceased_on: Option<String>,
    #[arg(long)]
    pub care_form: Option<String>,
    #[arg(long)]
    pub district: Option<String>,
    /// A need code; repeat for several.
    #[arg(long = "need")]
    pub needs: Vec<String>,
    /// The identity document's kind (e.g. "паспорт РФ"); a document needs kind and number.
    #[arg(long)]
    pub id_document_kind: Option<String>,
    #[arg(long)]
    pub id_document_series: Option<String>,
    #[arg(long)]
    pub id_document_number: Option<String>,
    #[arg(long)]
    pub id_document_issued_by: Option<String>,
    /// YYYY-MM-DD or DD.MM.YYYY.
    #[arg(long)]
    pub id_document_issued_on: Option<String>,
    /// The contact person's name (needed with a relation or phone).
    #[arg(long)]
    pub contact_name: Option<String>,
    /// e.g. "сын", "дочь".
    #[arg(long)]
    pub contact_relation: Option<String>,
    #[arg(long)]
    pub contact_phone: Option<String>,
    /// Free-text notes (sealed with the passport).
    #[arg(long)]
    pub notes: Option<String>,
    /// Ask on the terminal for the identifying fields not given as flags, one per line, so that
    /// they stay out of the shell's history and the process list: surname, names, date of
    /// birth, SNILS, policy, phone, address; the identity document's kind and, for a document,
    /// its series, number, issuer and date of issue; the contact person's name and, for a
    /// contact person, relation and phone; the notes (one line: a note of several lines needs
    /// --notes). An empty answer leaves a field out (in `patient edit`, as it is).
    #[arg(long)]
    pub ask: bool,
}

/// The passport's columns, in the order `--ask` asks for them, and how a prompt names them.
/// Given as arguments they stay in the shell's history and are shown to every local account in
/// the process list; `--ask` takes them from the terminal instead.
const IDENTIFYING: [(&str, &str); 17] = [
    ("surname", "Surname"),
    ("first_name", "First name"),
    ("patronymic", "Patronymic"),
    ("date_of_birth", "Date of birth"),
    ("snils", "SNILS"),
    ("policy_number", "Policy number"),
    ("phone", "Phone"),
    ("address", "Address"),
    ("id_document_kind", "Identity document kind"),
    ("id_document_series", "Document series"),
    ("id_document_number", "Document number"),
    ("id_document_issued_by", "Document issued by"),
    ("id_document_issued_on", "Document issued on"),
    ("contact_name", "Contact person's name"),
    ("contact_relation", "Contact person's relation"),
    ("contact_phone", "Contact person's phone"),
    ("notes", "Notes"),
];

fn warn_identifying_arguments(err: &mut dyn Write) -> Result<()> {
    writeln!(
        err,
        "note: identifying values given as arguments stay in your shell's history and show in \
         the process list; --ask takes them from the terminal"
    )?;
    Ok(())
}

/// With `ask`, reads each identifying column of `columns` not already given from `input` (an
/// empty answer leaves it out, and so an edit leaves it as it is); without, warns once on `err`
/// when any is given as an argument.
///
/// The identity document's series, number, issuer and date of issue are asked only for a
/// document: one whose kind was just typed or any of whose columns is given, or, in an edit, the
/// one `opened` holds (so that its number can change without its kind typed again). The
/// contact person's relation and phone follow its name alike. A clinician with no document at
/// hand so answers one empty line, not five. The lines are taken as typed: `row::parse` checks
/// them as it checks the flags.
fn identifying_fields(
    given: &mut BTreeMap<&'static str, String>,
    columns: &[&'static str],
    ask: bool,
    opened: Option<&Passport>,
    input: &mut dyn BufRead,
    err: &mut dyn Write,
) -> Result<()> {
    let asked = IDENTIFYING.iter().filter(|(c, _)| columns.contains(c));
    if !ask {
        if asked.clone().any(|(c, _)| given.contains_key(c)) {
            warn_identifying_arguments(err)?;
        }
        return Ok(());
    }
    // Each group, its first column leading, and whether the opened passport holds one.
    let groups: [(&[&str], bool); 2] = [
        (
            &row::DOCUMENT_COLUMNS,
            opened.is_some_and(|p| p.identity_document.is_some()),
        ),
        (
            &row::CONTACT_COLUMNS,
            opened.is_some_and(|p| p.contact_person.is_some()),
        ),
    ];
    for (column, label) in asked {
        if given.contains_key(column) {
            continue;
        }
        let follows = groups.iter().find(|(group, _)| group[1..].contains(column));
        if let Some((group, held)) = follows
            && !held
            && !group.iter().any(|c| given.contains_key(c))
        {
            continue;
        }
        // What an empty answer to a question that may well have none means.
        let leads = *column == "notes" || groups.iter().any(|(group, _)| group[0] == *column);
        let hint = match (leads, opened) {
            (false, _) => "",
            (true, None) => " (empty: none)",
            (true, Some(_)) => " (empty: unchanged)",
        };
        write!(err, "{label}{hint}: ")?;
        err.flush()?;
        let mut line = String::new();
        input.read_line(&mut line)?;
        let answer = line.trim();
        if !answer.is_empty() {
            given.insert(column, answer.to_string());
        }
    }
    Ok(())
}

impl PatientFields {
    /// The columns given as arguments and, with `--ask`, at the terminal; `opened` is the
    /// passport an edit changes (none for a new one).
    fn given(&self, opened: Option<&Passport>) -> Result<BTreeMap<&'static str, String>> {
        let mut given = self.columns();
        let all: Vec<_> = IDENTIFYING.iter().map(|(c, _)| *c).collect();
        identifying_fields(
            &mut given,
            &all,
            self.ask,
            opened,
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
        )?;
        Ok(given)
    }

    /// The flags given, by CSV column.
    fn columns(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        let pairs: [(&'static str, &Option<String>); 25] = [
            ("surname", &self.surname),
            ("first_name", &self.first_name),
            ("patronymic", &self.patronymic),
            ("date_of_birth", &self.dob),
            ("sex", &self.sex),
            ("snils", &self.snils),
            ("policy_number", &self.policy),
            ("phone", &self.phone),
            ("address", &self.address),
            ("diagnosis", &self.diagnosis),
            ("status", &self.status),
            ("registered_on", &self.registered_on),
            ("discharged_on", &self.discharged_on),
            ("deceased_on", &self.deceased_on),
            ("care_form", &self.care_form),
            ("district", &self.district),
            ("id_document_kind", &self.id_document_kind),
            ("id_document_series", &self.id_document_series),
            ("id_document_number", &self.id_document_number),
            ("id_document_issued_by", &self.id_document_issued_by),
            ("id_document_issued_on", &self.id_document_issued_on),
            ("contact_name", &self.contact_name),
            ("contact_relation", &self.contact_relation),
            ("contact_phone", &self.contact_phone),
            ("notes", &self.notes),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                m.insert(k, v.clone());
            }
        }
        if !self.needs.is_empty() {
            m.insert("needs", self.needs.join("|"));
        }
        m
    }
}

#[derive(Subcommand, Debug)]
pub enum PatientCommand {
    /// Register a patient (status defaults to registered, registration date to today).
    Add(PatientFields),
    /// Show a patient, decrypted, with its record.
    Show { id: i64 },
    /// Change a patient; give only the fields to change (an empty value clears an optional one).
    Edit {
        id: i64,
        #[command(flatten)]
        fields: PatientFields,
    },
    /// Find patients; identifying values are sent only as blind-index tokens.
    Search(SearchArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct SearchArgs {
    /// Ask for the surname, date of birth, SNILS and policy not given, on the terminal (see
    /// `patient add --ask`).
    #[arg(long)]
    pub ask: bool,
    #[arg(long)]
    pub surname: Option<String>,
    #[arg(long)]
    pub dob: Option<String>,
    /// The year of birth: a filter of the record (whose birth year is not secret), alone or
    /// with the surname.
    #[arg(long)]
    pub birth_year: Option<i32>,
    #[arg(long)]
    pub snils: Option<String>,
    #[arg(long)]
    pub policy: Option<String>,
    #[arg(long)]
    pub diagnosis: Option<String>,
    /// An ICD-10 block such as C15-C26.
    #[arg(long)]
    pub icd10_block: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub care_form: Option<String>,
    #[arg(long)]
    pub district: Option<String>,
    #[arg(long)]
    pub need: Option<String>,
    #[arg(long)]
    pub sex: Option<String>,
    #[arg(long)]
    pub age_from: Option<i32>,
    #[arg(long)]
    pub age_to: Option<i32>,
    #[arg(long)]
    pub registered_from: Option<String>,
    #[arg(long)]
    pub registered_to: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RxCommand {
    /// Write a prescription.
    Add {
        #[arg(long)]
        patient: i64,
        /// Medicament code of the reference book.
        #[arg(long)]
        medicament: String,
        #[arg(long)]
        dose: f64,
        #[arg(long)]
        dose_unit: String,
        #[arg(long)]
        route: String,
        #[arg(long)]
        frequency: String,
        #[arg(long)]
        quantity: f64,
        /// Default: today.
        #[arg(long)]
        start_on: Option<String>,
        #[arg(long)]
        end_on: Option<String>,
        /// Default: today.
        #[arg(long)]
        prescribed_on: Option<String>,
    },
}

/// Everything a command needs from the environment, resolved once.
pub struct Context {
    pub cli: Cli,
    pub dir: PathBuf,
}

impl Context {
    fn server(&self) -> Result<String> {
        if let Some(s) = &self.cli.server {
            return Ok(s.clone());
        }
        config::load_session(&self.dir).map(|s| s.server)
    }

    fn trust(&self) -> Trust {
        match (&self.cli.ca_cert, &self.cli.insecure_tls_fingerprint) {
            (Some(path), _) => Trust::CaCert(path.clone()),
            (None, Some(fp)) => Trust::Fingerprint(fp.clone()),
            _ => Trust::WebPki,
        }
    }

    fn anonymous(&self) -> Result<Api> {
        let server = self.server()?;
        let transport = UreqTransport::new(&server, &self.trust())?;
        Ok(Api::new(&server, Arc::new(transport)))
    }

    fn signed_in(&self) -> Result<Api> {
        let session = config::load_session(&self.dir)?;
        let api = self.anonymous()?;
        if api.base() != session.server.trim_end_matches('/') {
            return Err(Error::usage(format!(
                "signed in to {}, not {}: log in again",
                session.server,
                api.base()
            )));
        }
        Ok(api.with_token(&session.token))
    }

    fn key_file(&self) -> PathBuf {
        self.cli
            .key_file
            .clone()
            .unwrap_or_else(|| self.dir.join("key.json"))
    }

    fn passphrase(&self) -> Result<String> {
        config::secret(
            "PALREG_KEY_PASSPHRASE",
            self.cli.passphrase_file.as_deref(),
            "Key passphrase: ",
        )
    }

    fn key_pair(&self) -> Result<client_crypto::UserKeyPair> {
        keys::load(&self.key_file(), &self.passphrase()?)
    }

    /// The fingerprints of the institution key versions this client trusted (`key-pins.json`
    /// in the client folder).
    fn pins(&self) -> Result<keys::Pins> {
        keys::Pins::open(&config::pins_path(&self.dir))
    }

    fn clinic(&self) -> Result<Clinic> {
        let bits = self
            .cli
            .index_bits
            .unwrap_or_else(|| keys::default_bits(10_000));
        let mut pins = self.pins()?;
        Clinic::open(self.signed_in()?, &self.key_pair()?, bits, &mut pins)
    }
}

/// Runs a parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let ctx = Context {
        cli,
        dir: config::client_dir(),
    };
    match &ctx.cli.command {
        Command::Login {
            login,
            password_file,
            totp,
        } => {
            let password =
                config::secret("PALREG_PASSWORD", password_file.as_deref(), "Password: ")?;
            let anonymous = ctx.anonymous()?;
            let api = match anonymous.login(login, &password, totp.as_deref()) {
                Err(e) if totp.is_none() && e.api_code() == Some("totp_required") => {
                    let code = config::secret(
                        "PALREG_TOTP",
                        None,
                        "Authenticator code (or a recovery code): ",
                    )?;
                    anonymous.login(login, &password, Some(&code))?
                }
                other => other?,
            };
            config::save_session(
                &ctx.dir,
                &SavedSession {
                    server: api.base().to_string(),
                    login: login.clone(),
                    token: api.token().unwrap_or_default().to_string(),
                },
            )?;
            writeln!(out, "signed in to {} as {login}", api.base())?;
        }
        Command::Logout => {
            if let Ok(api) = ctx.signed_in() {
                // The local token goes in any case; a server that cannot be reached is told later never.
                let _ = api.logout();
            }
            config::forget_session(&ctx.dir)?;
            writeln!(out, "signed out")?;
        }
        Command::Whoami => {
            let me = ctx.signed_in()?.me()?;
            let institution = me.institution.map_or("no institution".to_string(), |i| {
                format!("{} ({})", i.name, i.code)
            });
            writeln!(
                out,
                "{} — {} — {} — roles: {}",
                me.login,
                me.full_name,
                institution,
                me.roles.join(", ")
            )?;
        }
        Command::Keys(k) => keys_command(&ctx, k, out)?,
        Command::Patient(p) => patient_command(&ctx, p, out)?,
        Command::Rx(RxCommand::Add {
            patient,
            medicament,
            dose,
            dose_unit,
            route,
            frequency,
            quantity,
            start_on,
            end_on,
            prescribed_on,
        }) => {
            let api = ctx.signed_in()?;
            let book = crate::refs::Book::from_entries(api.refs("medicaments")?);
            let medicament_id = book
                .id(medicament)
                .ok_or_else(|| Error::usage(format!("unknown medicament code {medicament:?}")))?;
            let today = crate::dates::today_iso();
            let rx: Value = api.post(
                "/api/v1/prescriptions",
                &json!({
                    "patient_id": patient, "medicament_id": medicament_id, "dose": dose,
                    "dose_unit": dose_unit, "route": route, "frequency": frequency,
                    "quantity": quantity, "start_on": start_on.clone().unwrap_or_else(|| today.clone()),
                    "end_on": end_on, "prescribed_on": prescribed_on.clone().unwrap_or(today),
                }),
            )?;
            writeln!(
                out,
                "prescription {} (id {})",
                rx["number"].as_str().unwrap_or("?"),
                rx["id"]
            )?;
        }
        Command::Import {
            file,
            batch_size,
            batch_bytes,
            encoding,
        } => {
            let clinic = ctx.clinic()?;
            let report = import::run(
                &clinic,
                file,
                &import::Options {
                    batch_size: *batch_size,
                    batch_bytes: *batch_bytes,
                    progress: true,
                    encoding: *encoding,
                },
            )?;
            for e in &report.errors {
                writeln!(out, "{}: {e}", file.display())?;
            }
            writeln!(
                out,
                "imported {}, already imported earlier {}, recovered from an interrupted run {}, lines with errors {}",
                report.imported,
                report.already_done,
                report.recovered,
                report
                    .errors
                    .iter()
                    .map(|e| e.line)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            )?;
            if !report.errors.is_empty() {
                return Err(Error::usage(
                    "some lines were not imported: fix them and run the import again (what is done is skipped)",
                ));
            }
        }
        Command::Export {
            file,
            force,
            encoding,
            separator,
        } => {
            let clinic = ctx.clinic()?;
            warn_untrusted(&clinic);
            let layout = export::Layout {
                encoding: *encoding,
                separator: *separator,
            };
            let n = export::run(&clinic, file, *force, layout)?;
            writeln!(out, "exported {n} patients to {}", file.display())?;
        }
    }
    Ok(())
}

fn keys_command(ctx: &Context, command: &KeysCommand, out: &mut dyn Write) -> Result<()> {
    let api = ctx.signed_in()?;
    match command {
        KeysCommand::Init => {
            let passphrase = config::new_secret(
                "PALREG_KEY_PASSPHRASE",
                ctx.cli.passphrase_file.as_deref(),
                "New key passphrase: ",
            )?;
            let fp = keys::init(&api, &ctx.key_file(), &passphrase)?;
            writeln!(out, "key file written to {}", ctx.key_file().display())?;
            writeln!(out, "your fingerprint: {fp}")?;
            writeln!(
                out,
                "read it out to the colleague who grants you the institution key"
            )?;
        }
        KeysCommand::Status => {
            let me = api.me()?;
            let institution = me
                .institution
                .ok_or_else(|| Error::usage("this account belongs to no institution"))?;
            let m = api.members(institution.id)?;
            writeln!(
                out,
                "{} ({}): current key version {}",
                institution.name,
                institution.code,
                m.current_version
                    .map_or("none (keys bootstrap)".into(), |v| v.to_string())
            )?;
            for member in &m.members {
                let holds = if member.holds.is_empty() {
                    "holds none".to_string()
                } else {
                    format!("holds {:?}", member.holds)
                };
                let pending = match (&member.public_key, m.current_version) {
                    (None, _) => " — no key published yet",
                    (Some(_), Some(v)) if !member.holds.contains(&v) => " — waiting for a grant",
                    _ => "",
                };
                writeln!(
                    out,
                    "  {:<20} {:<36} {holds}{pending}",
                    member.login,
                    member.fingerprint.as_deref().unwrap_or("-")
                )?;
            }
            if m.passports_pending_rotation > 0 {
                writeln!(
                    out,
                    "passports awaiting re-encryption: {}",
                    m.passports_pending_rotation
                )?;
            }
            if m.notes_pending_rotation > 0 {
                writeln!(
                    out,
                    "observation notes awaiting re-encryption: {} (the browser's Keys page continues the rotation)",
                    m.notes_pending_rotation
                )?;
            }
            let key_file = ctx.key_file();
            if !key_file.exists() {
                writeln!(
                    out,
                    "your key versions: no key file at {} (keys init)",
                    key_file.display()
                )?;
                return Ok(());
            }
            let me = api.me()?;
            let held = keys::institution_keys(&api, &me, &ctx.key_pair()?, &mut ctx.pins()?)?;
            print_key_chain(out, &held)?;
        }
        KeysCommand::Bootstrap => {
            let v = keys::bootstrap(&api, &ctx.key_pair()?)?;
            writeln!(
                out,
                "institution key version {v} created; grant it to colleagues with `keys grant`"
            )?;
        }
        KeysCommand::Grant { user, yes } => {
            let pair = ctx.key_pair()?;
            let mut confirm = |member: &crate::api::Member, fp: &client_crypto::Fingerprint| {
                println!(
                    "{} ({}) has the fingerprint\n  {fp}",
                    member.login, member.full_name
                );
                if *yes {
                    return true;
                }
                print!(
                    "Does it match what {} reads out from their screen? [y/N] ",
                    member.login
                );
                let _ = std::io::stdout().flush();
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                matches!(answer.trim(), "y" | "Y" | "yes" | "д" | "да")
            };
            let granted = keys::grant(&api, &pair, user, &mut ctx.pins()?, &mut confirm)?;
            match granted.versions.as_slice() {
                [] => writeln!(
                    out,
                    "{user} already holds every trusted key version you hold"
                )?,
                [one] => writeln!(out, "granted key version {one} to {user}")?,
                many => writeln!(out, "granted key versions {} to {user}", list(many))?,
            }
            for distrust in &granted.distrust {
                writeln!(
                    out,
                    "not granted: key version {} ({}): {}. Do not use it: tell your administrator.",
                    distrust.refused,
                    distrust.reason.code(),
                    distrust.cause(),
                )?;
            }
        }
        KeysCommand::Link { version, yes } => {
            let linked = keys::link(&api, &ctx.key_pair()?, *version, *yes, &mut ctx.pins()?)?;
            let (keys::Linked::Unconfirmed(fp) | keys::Linked::Stored(fp)) = &linked;
            writeln!(
                out,
                "institution key version {version} has the fingerprint\n  {fp}"
            )?;
            if let keys::Linked::Stored(_) = linked {
                writeln!(
                    out,
                    "version {version} linked to version {}: it is trusted from now on",
                    version - 1
                )?;
            } else {
                writeln!(
                    out,
                    "Compare it with the colleague who made version {version} (their \
                     `palreg-client keys status` or the browser's Keys page shows it).\n\
                     If it matches, run `palreg-client keys link --version {version} --yes`; if it \
                     does not, do not use version {version}: tell your administrator."
                )?;
                return Err(Error::usage(format!(
                    "version {version} not linked: add --yes once the fingerprint is compared"
                )));
            }
        }
        KeysCommand::Trust { version, yes } => {
            let trusted = keys::trust(&api, &ctx.key_pair()?, *version, *yes, &mut ctx.pins()?)?;
            let (keys::Trusted::Already(fp)
            | keys::Trusted::Unconfirmed(fp, _)
            | keys::Trusted::Pinned(fp, _)) = &trusted;
            writeln!(
                out,
                "institution key version {version} has the fingerprint\n  {fp}"
            )?;
            match trusted {
                keys::Trusted::Already(_) => {
                    writeln!(out, "version {version} is trusted already; nothing to do")?
                }
                keys::Trusted::Unconfirmed(_, reason) => {
                    writeln!(
                        out,
                        "Nothing vouches for version {version} ({}). Compare this fingerprint \
                         with a colleague who holds version {version} (their `palreg-client keys \
                         status` or the browser's Keys page shows it), digit by digit, by phone or \
                         in person, not through palreg.\n\
                         If it matches, run `palreg-client keys trust --version {version} --yes`; \
                         if it does not, do not use version {version}: tell your administrator.",
                        reason.code()
                    )?;
                    return Err(Error::usage(format!(
                        "version {version} not trusted: add --yes once the fingerprint is compared"
                    )));
                }
                keys::Trusted::Pinned(_, newest) => {
                    writeln!(
                        out,
                        "version {version} is trusted from now on (this client remembers its fingerprint)"
                    )?;
                    if let Some(d) = newest {
                        writeln!(
                            out,
                            "note: version {}, the newest you hold, is still not trusted ({}): {}. \
                             New passports cannot be saved until it is.",
                            d.refused,
                            d.reason.code(),
                            d.cause()
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `1, 2, 3`.
fn list(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fingerprint of each key version held and what vouches for it, or why nothing does.
fn print_key_chain(out: &mut dyn Write, held: &keys::HeldKeys) -> Result<()> {
    use client_crypto::key_chain::Untrusted;
    use keys::VersionTrust;
    let states = held.states();
    if states.is_empty() {
        writeln!(out, "your key versions: none held yet")?;
        return Ok(());
    }
    writeln!(out, "your key versions:")?;
    for (key, state) in &states {
        let v = key.version();
        let trust = match state {
            VersionTrust::FirstUse => format!(
                "trusted on first use (the oldest you hold: compare this fingerprint with a \
                 colleague who holds version {v}); remembered from now on"
            ),
            VersionTrust::Pinned => {
                "trusted: the fingerprint this client remembers trusting".to_string()
            }
            VersionTrust::Linked => format!("trusted: linked to version {}", v - 1),
            VersionTrust::Untrusted(reason) => format!("NOT TRUSTED ({})", reason.code()),
            VersionTrust::AfterUntrusted(first) => {
                format!("NOT TRUSTED: follows version {first}, which is not trusted")
            }
        };
        writeln!(
            out,
            "  version {v:<4} {:<36} {trust}",
            key.fingerprint(held.institution_id).to_string()
        )?;
    }
    let problems = held.problems();
    for problem in &problems {
        writeln!(
            out,
            "key chain: version {} ({}): {}.",
            problem.version,
            problem.reason.code(),
            problem.why()
        )?;
    }
    if !problems.is_empty() {
        let sealing = match held.distrust() {
            Some(d) => format!(
                " New passports cannot be saved until this is resolved (version {}, the newest \
                 you hold, is not trusted).",
                d.refused
            ),
            None => String::new(),
        };
        let by_hand = problems
            .iter()
            .any(|p| !matches!(p.reason, Untrusted::KeyChanged | Untrusted::BadLink));
        writeln!(
            out,
            "Versions not trusted only open passports: nothing is sealed, searched or granted \
             with them.{sealing} Do not use them: tell your administrator{}.",
            if by_hand {
                ", unless what is said above lets you vouch for one after comparing its \
                 fingerprint with a colleague"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// Warns on stderr about every held key version the key chain does not vouch for: it opens
/// passports, and nothing else.
fn warn_untrusted(clinic: &Clinic) {
    for d in clinic.held().problems() {
        eprintln!(
            "warning: institution key version {} is not trusted ({}): {}. It is used only to \
             open passports. Do not use it: tell your administrator (`keys status` shows the key chain).",
            d.version,
            d.reason.code(),
            d.why()
        );
    }
}

/// Whether an edit parses `column` as the opened passport has it: every column but those of a
/// document or contact person none of whose flags is given. Those are left out, so that a
/// document typed elsewhere without what this client requires (a number, say) does not stop
/// an edit of something else; the overlay keeps them as they were all the same.
fn parsed_in_edit(column: &str, given: &BTreeMap<&'static str, String>) -> bool {
    let touched = |group: &[&str]| group.iter().any(|c| given.contains_key(c));
    if row::DOCUMENT_COLUMNS.contains(&column) {
        return touched(&row::DOCUMENT_COLUMNS);
    }
    if row::CONTACT_COLUMNS.contains(&column) {
        return touched(&row::CONTACT_COLUMNS);
    }
    true
}

struct Map(BTreeMap<&'static str, String>);

impl Cells for Map {
    fn cell(&self, column: &str) -> &str {
        self.0.get(column).map_or("", String::as_str)
    }
}

fn parse_fields(cells: BTreeMap<&'static str, String>, books: &Books) -> Result<row::Row> {
    row::parse(&Map(cells), books, &crate::dates::today_iso()).map_err(|faults| {
        Error::Usage(
            faults
                .iter()
                .map(|f| format!("--{}: {}", f.column.replace('_', "-"), f.reason))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

fn patient_command(ctx: &Context, command: &PatientCommand, out: &mut dyn Write) -> Result<()> {
    let clinic = ctx.clinic()?;
    let books = Books::load(&clinic.api)?;
    match command {
        PatientCommand::Add(fields) => {
            // Refused before anything is asked when there is no key to seal under.
            clinic.key()?;
            let mut cells = fields.given(None)?;
            cells.entry("status").or_insert_with(|| "registered".into());
            cells
                .entry("registered_on")
                .or_insert_with(crate::dates::today_iso);
            let row = parse_fields(cells, &books)?;
            let id = patients::add(&clinic, &row.passport, row.record)?;
            writeln!(out, "patient {id} registered")?;
        }
        PatientCommand::Show { id } => {
            warn_untrusted(&clinic);
            let (patient, passport) = patients::show(&clinic, *id)?;
            print_patient(out, &patient, &passport, &books)?;
        }
        PatientCommand::Edit { id, fields } => {
            warn_untrusted(&clinic);
            let (patient, passport) = patients::show(&clinic, *id)?;
            // The whole line is parsed (the record's rules span columns), but only the given
            // fields are laid over the opened passport: see `row::overlay_passport`.
            // Asked after the passport is opened: what it holds decides what is asked.
            let given = fields.given(Some(&passport))?;
            let mut cells: BTreeMap<&'static str, String> = COLUMNS
                .iter()
                .copied()
                .zip(row::to_cells(&passport, &patient.record, &books))
                .filter(|(column, _)| parsed_in_edit(column, &given))
                .collect();
            cells.extend(given.clone());
            let row = parse_fields(cells, &books)?;
            let edited = row::overlay_passport(&passport, &row.passport, given.keys().copied());
            let changed = (edited != passport).then_some(&edited);
            let saved = patients::edit(&clinic, *id, patient.version, changed, row.record)?;
            writeln!(out, "patient {id} saved (version {})", saved.version)?;
        }
        PatientCommand::Search(args) => {
            warn_untrusted(&clinic);
            let mut given: BTreeMap<&'static str, String> = [
                ("surname", &args.surname),
                ("date_of_birth", &args.dob),
                ("snils", &args.snils),
                ("policy_number", &args.policy),
            ]
            .into_iter()
            .filter_map(|(c, v)| v.clone().map(|v| (c, v)))
            .collect();
            identifying_fields(
                &mut given,
                &["surname", "date_of_birth", "snils", "policy_number"],
                args.ask,
                None,
                &mut std::io::stdin().lock(),
                &mut std::io::stderr(),
            )?;
            let args = SearchArgs {
                surname: given.remove("surname"),
                dob: given.remove("date_of_birth"),
                snils: given.remove("snils"),
                policy: given.remove("policy_number"),
                ..args.clone()
            };
            let query = search_query(&args, &books)?;
            let found = patients::search(&clinic, &query)?;
            writeln!(
                out,
                "{:>8}  {:<40} {:<10} {:<6} {:<11} {:<10}",
                "id", "name", "born", "dx", "status", "registered"
            )?;
            for (p, passport) in &found.matches {
                let name = [
                    passport.surname.as_str(),
                    passport.first_name.as_str(),
                    passport.patronymic.as_deref().unwrap_or(""),
                ]
                .join(" ");
                writeln!(
                    out,
                    "{:>8}  {:<40} {:<10} {:<6} {:<11} {:<10}",
                    p.id,
                    name.trim(),
                    passport.date_of_birth,
                    books.diagnoses.code(p.record.diagnosis_id),
                    p.record.status,
                    p.record.registered_on
                )?;
            }
            writeln!(
                out,
                "{} found ({} candidates, {} dropped as blind-index coincidences)",
                found.matches.len(),
                found.candidates,
                found.candidates - found.matches.len()
            )?;
        }
    }
    Ok(())
}

fn search_query(a: &SearchArgs, books: &Books) -> Result<Query> {
    let mut filters = serde_json::Map::new();
    let lookup =
        |book: &crate::refs::Book, what: &str, code: &Option<String>| -> Result<Option<i64>> {
            code.as_ref()
                .map(|c| {
                    book.id(c)
                        .ok_or_else(|| Error::usage(format!("unknown {what} code {c:?}")))
                })
                .transpose()
        };
    let ids = [
        (
            "diagnosis_id",
            lookup(&books.diagnoses, "diagnosis", &a.diagnosis)?,
        ),
        (
            "care_form_id",
            lookup(&books.care_forms, "care form", &a.care_form)?,
        ),
        (
            "district_id",
            lookup(&books.districts, "district", &a.district)?,
        ),
        ("need_id", lookup(&books.needs, "need", &a.need)?),
    ];
    for (k, v) in ids {
        if let Some(v) = v {
            filters.insert(k.into(), json!(v));
        }
    }
    if let Some(block) = &a.icd10_block {
        filters.insert("icd10_block".into(), json!(crate::refs::icd10_code(block)));
    }
    for (k, v) in [
        ("status", &a.status),
        ("sex", &a.sex),
        ("registered_from", &a.registered_from),
        ("registered_to", &a.registered_to),
    ] {
        if let Some(v) = v {
            filters.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("age_from", a.age_from), ("age_to", a.age_to)] {
        if let Some(v) = v {
            filters.insert(k.into(), json!(v));
        }
    }
    Ok(Query {
        surname: a.surname.clone(),
        date_of_birth: a.dob.clone(),
        birth_year: a.birth_year,
        snils: a.snils.clone(),
        policy: a.policy.clone(),
        filters,
    })
}

fn print_patient(
    out: &mut dyn Write,
    patient: &PatientView,
    passport: &Passport,
    books: &Books,
) -> Result<()> {
    writeln!(
        out,
        "patient {} (version {}, pseudonym {})",
        patient.id, patient.version, patient.pseudonym
    )?;
    for (column, value) in COLUMNS
        .iter()
        .zip(row::to_cells(passport, &patient.record, books))
    {
        if !value.is_empty() {
            // A note's further lines are indented under its first.
            let value = value
                .lines()
                .collect::<Vec<_>>()
                .join(&format!("\n{:24}", ""));
            writeln!(out, "  {column:<21} {value}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::tests::books;

    #[test]
    fn asked_fields_come_from_the_terminal_and_arguments_are_warned_about() {
        let all: Vec<_> = IDENTIFYING.iter().map(|(c, _)| *c).collect();
        // Asked: every identifying field not given, in order; an empty line skips one.
        let mut given = BTreeMap::from([("first_name", "Нина".to_string())]);
        let mut input = "Лебедева\n\n01.02.1940\n112-233-445 95\n\n\n\n".as_bytes();
        let mut err = Vec::new();
        identifying_fields(&mut given, &all, true, None, &mut input, &mut err).unwrap();
        assert_eq!(given["surname"], "Лебедева");
        assert_eq!(given["first_name"], "Нина");
        assert_eq!(given["date_of_birth"], "01.02.1940");
        assert_eq!(given["snils"], "112-233-445 95");
        assert!(!given.contains_key("patronymic") && !given.contains_key("phone"));
        let prompts = String::from_utf8(err).unwrap();
        assert!(
            prompts.starts_with("Surname: Patronymic: Date of birth: "),
            "{prompts}"
        );
        assert!(
            !prompts.contains("First name"),
            "a given field is not asked"
        );

        // Given as arguments: kept, with a note; nothing identifying given: no note.
        let mut err = Vec::new();
        identifying_fields(&mut given, &all, false, None, &mut "".as_bytes(), &mut err).unwrap();
        assert!(String::from_utf8(err).unwrap().contains("--ask"));
        let mut status_only = BTreeMap::from([("status", "discharged".to_string())]);
        let mut err = Vec::new();
        identifying_fields(
            &mut status_only,
            &all,
            false,
            None,
            &mut "".as_bytes(),
            &mut err,
        )
        .unwrap();
        assert!(err.is_empty());
    }

    /// `identifying_fields` with `--ask` over every column: the fields it ends with, the prompts
    /// it wrote, and the answers it left unread.
    fn asked(
        mut given: BTreeMap<&'static str, String>,
        opened: Option<&Passport>,
        answers: &str,
    ) -> (BTreeMap<&'static str, String>, String, String) {
        let all: Vec<_> = IDENTIFYING.iter().map(|(c, _)| *c).collect();
        let mut input = answers.as_bytes();
        let mut err = Vec::new();
        identifying_fields(&mut given, &all, true, opened, &mut input, &mut err).unwrap();
        let unread = String::from_utf8(input.to_vec()).unwrap();
        (given, String::from_utf8(err).unwrap(), unread)
    }

    /// The record's columns a new patient needs, beside what is asked.
    fn with_record(mut cells: BTreeMap<&'static str, String>) -> BTreeMap<&'static str, String> {
        for (column, value) in [
            ("sex", "F"),
            ("diagnosis", "C50"),
            ("status", "registered"),
            ("registered_on", "2024-01-01"),
        ] {
            cells.insert(column, value.into());
        }
        cells
    }

    #[test]
    fn the_prompts_cover_the_document_and_contact_columns_in_order() {
        let columns: Vec<_> = IDENTIFYING.iter().map(|(c, _)| *c).collect();
        assert_eq!(&columns[8..13], &row::DOCUMENT_COLUMNS);
        assert_eq!(&columns[13..16], &row::CONTACT_COLUMNS);
        assert_eq!(columns[16], "notes");
    }

    #[test]
    fn a_document_a_contact_person_and_notes_are_asked_after_the_passport_s_fields() {
        let answers = "Лебедева\nНина\n\n01.02.1940\n\n\n\n\n\
                       паспорт РФ\n8600\n123456\nОВД г. Петрозаводска\n02.03.2005\n\
                       Лебедев Пётр\nсын\n+7 900 555-44-33\n\
                       ключ у соседки\n";
        let (given, prompts, unread) = asked(BTreeMap::new(), None, answers);
        assert_eq!(
            prompts,
            "Surname: First name: Patronymic: Date of birth: SNILS: Policy number: Phone: \
             Address: Identity document kind (empty: none): Document series: Document number: \
             Document issued by: Document issued on: Contact person's name (empty: none): \
             Contact person's relation: Contact person's phone: Notes (empty: none): "
        );
        assert!(unread.is_empty());

        // The answers are parsed as the flags are: the date of issue normalized.
        let row = parse_fields(with_record(given), &books()).unwrap();
        let document = row.passport.identity_document.clone().unwrap();
        assert_eq!(
            (
                document.kind.as_str(),
                document.series.as_deref(),
                document.number.as_str(),
                document.issued_by.as_deref(),
                document.issued_on.as_deref()
            ),
            (
                "паспорт РФ",
                Some("8600"),
                "123456",
                Some("ОВД г. Петрозаводска"),
                Some("2005-03-02")
            )
        );
        let contact = row.passport.contact_person.clone().unwrap();
        assert_eq!(
            (
                contact.name.as_str(),
                contact.relation.as_deref(),
                contact.phone.as_deref()
            ),
            ("Лебедев Пётр", Some("сын"), Some("+7 900 555-44-33"))
        );
        assert_eq!(row.passport.notes.as_deref(), Some("ключ у соседки"));
    }

    #[test]
    fn an_empty_kind_or_name_skips_the_rest_of_the_document_or_contact_person() {
        let answers = "Лебедева\nНина\n\n01.02.1940\n\n\n\n\n\n\n\nnot an answer\n";
        let (given, prompts, unread) = asked(BTreeMap::new(), None, answers);
        assert!(
            prompts.ends_with(
                "Address: Identity document kind (empty: none): \
                 Contact person's name (empty: none): Notes (empty: none): "
            ),
            "{prompts}"
        );
        assert!(!prompts.contains("Document series") && !prompts.contains("relation"));
        assert_eq!(unread, "not an answer\n", "nothing more is read");
        assert!(
            given
                .keys()
                .all(|c| !row::DOCUMENT_COLUMNS.contains(c) && !row::CONTACT_COLUMNS.contains(c))
        );
        assert!(!given.contains_key("notes"));
        let row = parse_fields(with_record(given), &books()).unwrap();
        assert!(row.passport.identity_document.is_none() && row.passport.contact_person.is_none());
    }

    #[test]
    fn fields_given_as_flags_are_not_asked_again() {
        let given = BTreeMap::from([
            ("surname", "Лебедева".to_string()),
            ("first_name", "Нина".to_string()),
            ("date_of_birth", "01.02.1940".to_string()),
            ("id_document_kind", "паспорт РФ".to_string()),
            ("contact_relation", "дочь".to_string()),
            ("notes", "ключ у соседки".to_string()),
        ]);
        let answers = "\n\n\n\n\n8600\n123456\n\n\nЛебедева Ольга\n\n";
        let (given, prompts, unread) = asked(given, None, answers);
        // A kind given: the rest of the document is asked; a relation given: the name is
        // asked (and needed) and the phone too.
        assert_eq!(
            prompts,
            "Patronymic: SNILS: Policy number: Phone: Address: Document series: \
             Document number: Document issued by: Document issued on: \
             Contact person's name (empty: none): Contact person's phone: "
        );
        assert!(unread.is_empty());
        assert_eq!(given["id_document_kind"], "паспорт РФ");
        assert_eq!(given["id_document_number"], "123456");
        assert_eq!(given["contact_name"], "Лебедева Ольга");
        assert_eq!(given["contact_relation"], "дочь");
        assert_eq!(given["notes"], "ключ у соседки");
    }

    #[test]
    fn an_edit_asks_for_the_opened_document_and_an_empty_answer_leaves_a_field_as_it_is() {
        let mut opened =
            Passport::new("Лебедева", "Нина", "1940-02-01", client_crypto::Sex::Female);
        opened.identity_document = Some(client_crypto::IdentityDocument {
            kind: "паспорт РФ".into(),
            series: Some("8600".into()),
            number: "123456".into(),
            issued_by: None,
            issued_on: None,
        });
        opened.notes = Some("ключ у соседки".into());
        // The kind left as it is, the number changed; no contact person to ask about.
        let answers = "\n\n\n\n\n\n\n\n\n\n654321\n\n\n\n";
        let (given, prompts, unread) = asked(BTreeMap::new(), Some(&opened), answers);
        assert_eq!(
            prompts,
            "Surname: First name: Patronymic: Date of birth: SNILS: Policy number: Phone: \
             Address: Identity document kind (empty: unchanged): Document series: \
             Document number: Document issued by: Document issued on: \
             Contact person's name (empty: unchanged): Notes (empty: unchanged): "
        );
        assert!(unread.is_empty());
        assert_eq!(
            given,
            BTreeMap::from([("id_document_number", "654321".to_string())])
        );

        // Laid over the opened passport as an edit lays it: the number alone changes.
        let mut cells: BTreeMap<&'static str, String> = COLUMNS
            .iter()
            .copied()
            .zip(row::to_cells(
                &opened,
                &crate::api::Record {
                    sex: "F".into(),
                    birth_year: 1940,
                    district_id: None,
                    diagnosis_id: 1,
                    care_form_id: None,
                    status: "registered".into(),
                    registered_on: "2024-01-01".into(),
                    discharged_on: None,
                    deceased_on: None,
                    needs: Vec::new(),
                },
                &books(),
            ))
            .filter(|(column, _)| parsed_in_edit(column, &given))
            .collect();
        cells.extend(given.clone());
        let row = parse_fields(cells, &books()).unwrap();
        let edited = row::overlay_passport(&opened, &row.passport, given.keys().copied());
        let mut expected = opened.clone();
        if let Some(d) = expected.identity_document.as_mut() {
            d.number = "654321".into();
        }
        assert!(edited == expected);
    }

    #[test]
    fn an_answer_is_refused_as_its_flag_would_be() {
        let answers = "Лебедева\nНина\n\n01.02.1940\n\n\n\n\nпаспорт РФ\n\n\n\n31.02.2005\n\n\n";
        let (given, _, _) = asked(BTreeMap::new(), None, answers);
        let Err(asked) = parse_fields(with_record(given), &books()) else {
            panic!("an invalid date of issue is refused");
        };
        let flags = PatientFields {
            surname: Some("Лебедева".into()),
            first_name: Some("Нина".into()),
            dob: Some("01.02.1940".into()),
            id_document_kind: Some("паспорт РФ".into()),
            id_document_issued_on: Some("31.02.2005".into()),
            ..PatientFields::default()
        };
        let Err(flagged) = parse_fields(with_record(flags.columns()), &books()) else {
            panic!("an invalid date of issue is refused");
        };
        assert_eq!(asked.to_string(), flagged.to_string());
        let said = asked.to_string();
        assert!(said.contains("--id-document-number: required"), "{said}");
        assert!(
            said.contains("--id-document-issued-on: not a date"),
            "{said}"
        );
    }

    #[test]
    fn without_ask_nothing_is_asked_and_the_document_contact_and_notes_are_warned_about() {
        let all: Vec<_> = IDENTIFYING.iter().map(|(c, _)| *c).collect();
        for column in ["id_document_number", "contact_name", "notes"] {
            let mut given = BTreeMap::from([(column, "…".to_string())]);
            let mut input = "Лебедева\n".as_bytes();
            let mut err = Vec::new();
            identifying_fields(&mut given, &all, false, None, &mut input, &mut err).unwrap();
            let said = String::from_utf8(err).unwrap();
            assert!(
                said.starts_with("note:") && said.contains("--ask"),
                "{said}"
            );
            assert_eq!(input, "Лебедева\n".as_bytes(), "nothing is read");
            assert_eq!(given.len(), 1);
        }
        // Said once, however many are given.
        let mut given = BTreeMap::from([
            ("surname", "Лебедева".to_string()),
            ("contact_phone", "+7 900 555-44-33".to_string()),
            ("notes", "ключ у соседки".to_string()),
        ]);
        let mut err = Vec::new();
        identifying_fields(&mut given, &all, false, None, &mut "".as_bytes(), &mut err).unwrap();
        assert_eq!(String::from_utf8(err).unwrap().matches("note:").count(), 1);
    }
}
