//! The user's key pair (a passphrase-wrapped key file), the institution key, and the pins
//! that remember which versions of it this client trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use client_crypto::key_chain::{self, Untrusted, Vouched};
use client_crypto::{BlindIndexBits, Fingerprint, InstitutionKey, PublicKey, UserKeyPair};
use serde_json::{Value, json};

use crate::api::{Api, Me, Member, Members};
use crate::error::{Error, Result};

/// Creates a key pair, writes its key file (mode 0600, refusing to overwrite) and publishes
/// the public key. Returns the fingerprint to read out to colleagues.
pub fn init(api: &Api, key_file: &Path, passphrase: &str) -> Result<Fingerprint> {
    if key_file.exists() {
        return Err(Error::usage(format!(
            "{} exists; move it away to make a new key pair",
            key_file.display()
        )));
    }
    let pair = UserKeyPair::generate()?;
    let json = pair.export_key_file(passphrase)?;
    crate::config::write_private(key_file, json.as_bytes())?;
    publish(api, &pair)?;
    Ok(pair.public_key().fingerprint())
}

/// Publishes the key pair's public key as the caller's.
pub fn publish(api: &Api, pair: &UserKeyPair) -> Result<()> {
    api.put::<Value>(
        "/api/v1/me/public-key",
        &json!({"public_key": pair.public_key().encode()}),
    )?;
    Ok(())
}

/// Opens a key file.
pub fn load(key_file: &Path, passphrase: &str) -> Result<UserKeyPair> {
    let json = std::fs::read_to_string(key_file)
        .map_err(|e| Error::usage(format!("key file {}: {e}", key_file.display())))?;
    Ok(UserKeyPair::import_key_file(&json, passphrase)?)
}

fn institution_of(me: &Me) -> Result<i64> {
    me.institution
        .as_ref()
        .map(|i| i.id)
        .ok_or_else(|| Error::usage("this account belongs to no institution"))
}

/// Creates the institution's first key version, wrapped to the caller.
pub fn bootstrap(api: &Api, pair: &UserKeyPair) -> Result<u32> {
    let me = api.me()?;
    let institution_id = institution_of(&me)?;
    let members = api.members(institution_id)?;
    if let Some(v) = members.current_version {
        return Err(Error::usage(format!(
            "the institution already has key version {v}; ask a holder to grant it to you"
        )));
    }
    let key = InstitutionKey::generate(1)?;
    api.post::<Value>(
        &format!("/api/v1/institutions/{institution_id}/keys"),
        &json!({"version": 1, "envelope": key.wrap_for(pair.public_key(), me.id, institution_id)?}),
    )?;
    Ok(1)
}

/// The colleague `login` of the caller's institution.
pub fn member(members: &Members, login: &str) -> Result<Member> {
    members
        .members
        .iter()
        .find(|m| m.login == login)
        .cloned()
        .ok_or_else(|| Error::usage(format!("{login} is no member of your institution")))
}

/// What `grant` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The versions granted, oldest first.
    pub versions: Vec<u32>,
    /// The versions held, not held by the colleague, and not granted because the key chain
    /// does not vouch for them (granting a planted key would spread it), oldest first.
    pub skipped: Vec<u32>,
    /// Why each of [`Self::skipped`] is not trusted, in the same order.
    pub distrust: Vec<Distrust>,
}

/// Grants colleague `login` every trusted institution key version the caller holds and the
/// colleague does not (during a rotation older passports are still sealed under an older
/// version), after `confirm` has accepted the colleague's fingerprint (computed here from the
/// public key, not taken from the server; a server listing another fingerprint for that key is
/// refused). Versions the key chain does not vouch for are never granted (see [`HeldKeys`]).
pub fn grant(
    api: &Api,
    pair: &UserKeyPair,
    login: &str,
    pins: &mut Pins,
    confirm: &mut dyn FnMut(&Member, &Fingerprint) -> bool,
) -> Result<Granted> {
    let me = api.me()?;
    let institution_id = institution_of(&me)?;
    let members = api.members(institution_id)?;
    let colleague = member(&members, login)?;
    let public = colleague
        .public_key
        .as_deref()
        .ok_or_else(|| Error::usage(format!("{login} has not published a key yet (keys init)")))?;
    let public =
        PublicKey::parse(public).map_err(|e| Error::usage(format!("{login}'s public key: {e}")))?;
    let fingerprint = public.fingerprint();
    if colleague
        .fingerprint
        .as_deref()
        .is_some_and(|listed| listed != fingerprint.to_string())
    {
        return Err(Error::usage(format!(
            "the server lists another fingerprint for {login}'s key than the key has: \
             nothing granted; tell your administrator"
        )));
    }
    if !confirm(&colleague, &fingerprint) {
        return Err(Error::usage(
            "not granted: the fingerprint was not confirmed",
        ));
    }
    let held = institution_keys(api, &me, pair, pins)?;
    if held.all().is_empty() {
        return Err(no_key());
    }
    let holds = |version: u32| {
        colleague
            .holds
            .iter()
            .any(|v| u32::try_from(*v).ok() == Some(version))
    };
    let mut granted = Granted {
        versions: Vec::new(),
        skipped: Vec::new(),
        distrust: Vec::new(),
    };
    for key in held.untrusted() {
        let version = key.version();
        if let (false, Some(distrust)) = (holds(version), held.distrust_of(version)) {
            granted.skipped.push(version);
            granted.distrust.push(distrust);
        }
    }
    for key in held.trusted() {
        let version = key.version();
        if holds(version) {
            continue;
        }
        api.post::<Value>(
            &format!("/api/v1/institutions/{institution_id}/keys/{version}/envelopes"),
            &json!({"recipient_id": colleague.user_id, "envelope": key.wrap_for(&public, colleague.user_id, institution_id)?}),
        )?;
        granted.versions.push(version);
    }
    Ok(granted)
}

fn no_key() -> Error {
    Error::usage(
        "you hold no institution key yet: `keys bootstrap` (first user) or ask a colleague to `keys grant` it",
    )
}

/// Why the key chain does not vouch for a held version: the version refused, the held version
/// where the trouble starts (the refused one itself, or the untrusted version it follows), and
/// why that one is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distrust {
    /// The held version the trouble starts at: [`Self::refused`], or the untrusted version
    /// right before it that it follows.
    pub version: u32,
    /// Why [`Self::version`] is not trusted.
    pub reason: Untrusted,
    /// The version refused: for sealing, the newest held; for a grant, the version not granted.
    pub refused: u32,
}

impl Distrust {
    /// Why [`Self::version`] is not trusted, in a sentence that names the version before it.
    pub fn why(&self) -> String {
        let (v, before) = (self.version, self.version.saturating_sub(1));
        match self.reason {
            Untrusted::BadLink => format!(
                "the link of version {v} does not verify under version {before}: it was not made \
                 by a holder of version {before}, and the key may have been planted on the server"
            ),
            Untrusted::NoLink => format!(
                "the server has no link for version {v} (a version made before links were kept: \
                 a holder of versions {before} and {v} adds it with `keys link --version {v}` after \
                 comparing its fingerprint with the colleague who made it)"
            ),
            Untrusted::Gap => format!(
                "you do not hold version {before}, so nothing vouches for version {v} (ask a \
                 holder to grant you version {before}; or compare version {v}'s fingerprint, shown \
                 by `keys status`, with a colleague who holds it and, only if it matches, pin it \
                 with `keys trust --version {v}`)"
            ),
            Untrusted::KeyChanged => format!(
                "the key you now hold as version {v} is not the one this client trusted before \
                 (its fingerprint is not the one it remembers): the envelope of version {v} was \
                 replaced on the server, and the key may have been planted (`keys trust` does \
                 not accept it)"
            ),
            Untrusted::Unpinned => format!(
                "this client remembers other institution key versions of your account, but not \
                 version {v}, now the oldest you hold: the versions it trusted are no longer \
                 granted to you, so version {v} is not trusted on first use (compare its \
                 fingerprint, shown by `keys status`, with a colleague who holds version {v} \
                 and, only if it matches, pin it with `keys trust --version {v}`)"
            ),
        }
    }

    /// Why [`Self::refused`] is not trusted: [`Self::why`], after the version it follows when
    /// that is where the trouble starts.
    pub fn cause(&self) -> String {
        if self.refused == self.version {
            self.why()
        } else {
            format!(
                "it follows version {}, which is not trusted: {}",
                self.version,
                self.why()
            )
        }
    }
}

impl std::fmt::Display for Distrust {
    /// The refusal to seal under [`Self::refused`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "institution key version {} is not trusted ({}): {}. Nothing was sealed or saved. \
             Do not use version {}: tell your administrator.",
            self.refused,
            self.reason.code(),
            self.cause(),
            self.refused
        )
    }
}

/// What vouches for one held version, or why nothing does (see `client_crypto::key_chain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionTrust {
    /// The oldest version held, by a client that remembered no version yet: nothing before it
    /// vouches for it; its fingerprint is what colleagues compare. Pinned from now on.
    FirstUse,
    /// This client trusted it before, and its fingerprint is the one it remembers.
    Pinned,
    /// Its link verifies under the (trusted) version before it.
    Linked,
    /// Not trusted, and why.
    Untrusted(Untrusted),
    /// Not trusted: it follows an untrusted version (this one), so nothing vouches for it.
    AfterUntrusted(u32),
}

impl VersionTrust {
    pub fn is_trusted(&self) -> bool {
        matches!(
            self,
            VersionTrust::FirstUse | VersionTrust::Pinned | VersionTrust::Linked
        )
    }
}

/// The institution key versions the caller holds, oldest first, with their links and the key
/// chain's verdict on each. Anybody can wrap a key to the caller's public key, so a version is
/// trusted only when `client_crypto::key_chain::assess` says so: its fingerprint is the one
/// this client remembers from trusting it before (its [`Pins`]), or it is the oldest held by a
/// client that remembers none (trust on first use), or its link verifies under the trusted
/// version right before it. Every version held may open passports; only trusted ones may seal
/// them or compute blind-index tokens, and nothing is sealed while the newest held is
/// untrusted.
pub struct HeldKeys {
    pub institution_id: i64,
    keys: Vec<InstitutionKey>,
    links: Vec<Option<String>>,
    verdicts: Vec<std::result::Result<Vouched, Untrusted>>,
}

impl HeldKeys {
    /// Assesses `keys` (oldest first) with the fingerprints remembered for them (`pinned`) and
    /// whether any other version is remembered (`any_pins`).
    fn new(
        institution_id: i64,
        keys: Vec<InstitutionKey>,
        links: Vec<Option<String>>,
        pinned: Option<&BTreeMap<u32, String>>,
        any_pins: bool,
    ) -> Self {
        let verdicts = key_chain::assess(
            &keys,
            institution_id,
            |version| {
                keys.iter()
                    .position(|k| k.version() == version)
                    .and_then(|i| links[i].as_deref())
            },
            |version| pinned.and_then(|p| p.get(&version)).map(String::as_str),
            any_pins,
        );
        HeldKeys {
            institution_id,
            keys,
            links,
            verdicts,
        }
    }

    /// Every version held, oldest first: for opening passports only.
    pub fn all(&self) -> &[InstitutionKey] {
        &self.keys
    }

    /// The versions the chain vouches for, oldest first: for sealing and blind-index tokens.
    /// Not always a prefix of [`Self::all`]: a pinned version stays trusted after an untrusted
    /// one.
    pub fn trusted(&self) -> Vec<&InstitutionKey> {
        self.judged(true)
    }

    /// The versions held that the chain does not vouch for, oldest first.
    pub fn untrusted(&self) -> Vec<&InstitutionKey> {
        self.judged(false)
    }

    /// The versions held whose verdict is trust (`trusted`) or distrust, oldest first.
    fn judged(&self, trusted: bool) -> Vec<&InstitutionKey> {
        self.keys
            .iter()
            .zip(&self.verdicts)
            .filter(|(_, v)| v.is_ok() == trusted)
            .map(|(k, _)| k)
            .collect()
    }

    fn index(&self, version: u32) -> Option<usize> {
        self.keys.iter().position(|k| k.version() == version)
    }

    /// The held key of `version`, if any (trusted or not).
    pub fn get(&self, version: u32) -> Option<&InstitutionKey> {
        self.index(version).map(|i| &self.keys[i])
    }

    /// The server's link of a held `version`.
    pub fn link_of(&self, version: u32) -> Option<&str> {
        self.links[self.index(version)?].as_deref()
    }

    /// The chain's verdict on a held `version`.
    pub fn verdict(&self, version: u32) -> Option<std::result::Result<Vouched, Untrusted>> {
        self.index(version).map(|i| self.verdicts[i])
    }

    /// Where the trouble of the `i`-th version held starts: the untrusted version right before
    /// it, for one not trusted only because it follows that one, and so on back.
    fn origin(&self, mut i: usize) -> usize {
        while i > 0
            && self.verdicts[i] == Err(Untrusted::Gap)
            && self.verdicts[i - 1].is_err()
            && self.keys[i - 1].version().checked_add(1) == Some(self.keys[i].version())
        {
            i -= 1;
        }
        i
    }

    /// Why a held `version` is not trusted; `None` when it is (or is not held).
    pub fn distrust_of(&self, version: u32) -> Option<Distrust> {
        let i = self.index(version)?;
        self.verdicts[i].err()?;
        let origin = self.origin(i);
        Some(Distrust {
            version: self.keys[origin].version(),
            reason: self.verdicts[origin].err()?,
            refused: version,
        })
    }

    /// Why the newest version held (what sealing would use) is not trusted, if it is not.
    pub fn distrust(&self) -> Option<Distrust> {
        self.distrust_of(self.keys.last()?.version())
    }

    /// Every held version where the key chain stops (not those not trusted only because they
    /// follow one of these), oldest first.
    pub fn problems(&self) -> Vec<Distrust> {
        (0..self.keys.len())
            .filter(|&i| self.verdicts[i].is_err() && self.origin(i) == i)
            .filter_map(|i| self.distrust_of(self.keys[i].version()))
            .collect()
    }

    /// The trust state of each version held, oldest first.
    pub fn states(&self) -> Vec<(&InstitutionKey, VersionTrust)> {
        self.keys
            .iter()
            .zip(&self.verdicts)
            .enumerate()
            .map(|(i, (key, verdict))| {
                let state = match verdict {
                    Ok(Vouched::FirstUse) => VersionTrust::FirstUse,
                    Ok(Vouched::Pinned) => VersionTrust::Pinned,
                    Ok(Vouched::Linked) => VersionTrust::Linked,
                    Err(reason) => match self.origin(i) {
                        origin if origin == i => VersionTrust::Untrusted(*reason),
                        origin => VersionTrust::AfterUntrusted(self.keys[origin].version()),
                    },
                };
                (key, state)
            })
            .collect()
    }

    /// The key new and edited passports are sealed under: the newest version held, refused
    /// (naming the version and why) when the chain does not vouch for it.
    pub fn sealing_key(&self) -> Result<&InstitutionKey> {
        if let Some(distrust) = self.distrust() {
            return Err(Error::UntrustedKey(distrust));
        }
        self.keys.last().ok_or_else(no_key)
    }

    /// The trusted versions not pinned yet, with their fingerprints: what to remember.
    fn to_pin(&self) -> Vec<(u32, String)> {
        self.keys
            .iter()
            .zip(&self.verdicts)
            .filter(|(_, v)| matches!(v, Ok(Vouched::FirstUse | Vouched::Linked)))
            .map(|(k, _)| (k.version(), k.fingerprint(self.institution_id).to_string()))
            .collect()
    }
}

/// Whose pins: one institution's key, as one account of one server opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinScope {
    server: String,
    user_id: i64,
    institution_id: i64,
}

impl PinScope {
    /// The scope of `institution_id`'s key for account `user_id` of `server` (a base URL:
    /// scheme and host compared without case, a default port dropped).
    pub fn new(server: &str, user_id: i64, institution_id: i64) -> Self {
        PinScope {
            server: origin_of(server),
            user_id,
            institution_id,
        }
    }

    /// The scope's key in the pin file: `server|user id|institution id`.
    pub fn key(&self) -> String {
        format!("{}{}", self.account(), self.institution_id)
    }

    /// The prefix of the keys of every institution of the same account.
    fn account(&self) -> String {
        format!("{}|{}|", self.server, self.user_id)
    }
}

/// A server's base URL as pins name it: `https://Palreg.example:443/` → `https://palreg.example`.
fn origin_of(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let Some((scheme, rest)) = server.split_once("://") else {
        return server.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(stripped) = default_port.and_then(|p| authority.strip_suffix(p)) {
        authority = stripped.to_string();
    }
    format!("{scheme}://{authority}{path}")
}

/// The fingerprints of the institution key versions this client has trusted (its *pins*, see
/// `client_crypto::key_chain::assess`), by [`PinScope`]: kept in a file of the client folder
/// (`key-pins.json`, mode 0600, replaced atomically, changed under the lock of
/// `key-pins.lock`), as
/// `{"<server>|<user id>|<institution id>": {"<version>": "<fingerprint>"}}`; or, for tests and
/// library use, in memory only. A version is pinned once and never changed: a key that
/// differs later is `key_changed`.
#[derive(Debug, Default)]
pub struct Pins {
    file: Option<PathBuf>,
    scopes: BTreeMap<String, BTreeMap<u32, String>>,
}

impl Pins {
    /// The pins kept in `file` (none yet when it does not exist). A file that cannot be read
    /// is an error: forgetting the pins would trust a replaced key on first use again.
    pub fn open(file: &Path) -> Result<Pins> {
        Ok(Pins {
            scopes: Self::read(file)?,
            file: Some(file.to_path_buf()),
        })
    }

    /// Pins kept in memory only, for as long as this value lives.
    pub fn in_memory() -> Pins {
        Pins::default()
    }

    fn read(file: &Path) -> Result<BTreeMap<String, BTreeMap<u32, String>>> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(pin_file_error(file, &e)),
        };
        serde_json::from_str(&text).map_err(|e| pin_file_error(file, &e))
    }

    /// The fingerprints remembered in `scope`, by version.
    pub fn of(&self, scope: &PinScope) -> Option<&BTreeMap<u32, String>> {
        self.scopes.get(&scope.key())
    }

    /// Whether any version is remembered for the account of `scope`, in its institution or in
    /// another one (an account moved to another institution, as by whoever can write to the
    /// server's database, does not start over with trust on first use).
    pub fn remembers_any(&self, scope: &PinScope) -> bool {
        let account = scope.account();
        self.scopes
            .iter()
            .any(|(key, pins)| key.starts_with(&account) && !pins.is_empty())
    }

    /// Remembers `new` (version, fingerprint) in `scope`, those not remembered yet (a version
    /// pinned is never changed), merged under the pin file's lock with what other runs
    /// remembered meanwhile (see `update`). A version remembered meanwhile with another
    /// fingerprint is an error.
    pub fn pin(&mut self, scope: &PinScope, new: &[(u32, String)]) -> Result<()> {
        let known = self.of(scope);
        let fresh: Vec<(u32, String)> = new
            .iter()
            .filter(|(version, _)| known.is_none_or(|k| !k.contains_key(version)))
            .cloned()
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        self.update(scope, |_| ((), fresh))
    }

    /// The read-modify-write of the pin file, under an exclusive lock on `key-pins.lock`
    /// beside it: the pins are read again under the lock (another run of palreg-client may
    /// have pinned since this one read them), `decide` chooses from them what to remember in
    /// `scope`, and that is merged in and saved before the lock is let go. Without the lock,
    /// two runs at once would each write back what they read plus their own pins, and the
    /// later one would erase the earlier one's; a version forgotten so would be judged again,
    /// and maybe not trusted again. The file is written only when something is new.
    fn update<T>(
        &mut self,
        scope: &PinScope,
        decide: impl FnOnce(&Pins) -> (T, Vec<(u32, String)>),
    ) -> Result<T> {
        let _lock = self.file.as_deref().map(lock).transpose()?;
        if let Some(file) = &self.file {
            self.scopes = Self::read(file)?;
        }
        let (decided, new) = decide(self);
        let mut scopes = self.scopes.clone();
        let pins = scopes.entry(scope.key()).or_default();
        let mut added = false;
        for (version, fingerprint) in new {
            match pins.get(&version) {
                Some(other) if *other != fingerprint => {
                    return Err(Error::usage(format!(
                        "another run of palreg-client remembered another key as institution key \
                         version {version} meanwhile: run the command again"
                    )));
                }
                Some(_) => {}
                None => {
                    pins.insert(version, fingerprint);
                    added = true;
                }
            }
        }
        if let (Some(file), true) = (&self.file, added) {
            let mut json = serde_json::to_vec_pretty(&scopes)?;
            json.push(b'\n');
            crate::config::write_private_atomic(file, &json).map_err(|e| {
                Error::usage(format!(
                    "cannot save the institution key fingerprints this client trusts to {}: {e}",
                    file.display()
                ))
            })?;
        }
        self.scopes = scopes;
        Ok(decided)
    }
}

/// Takes the exclusive lock of the pin file `file`: on `key-pins.lock` beside it (mode 0600),
/// waiting while another run holds it. The pin file itself cannot carry the lock, since it is
/// replaced by a rename. The lock is let go when the returned file is dropped (or the process
/// ends); the lock file stays, as removing it could let two runs lock two different files.
fn lock(file: &Path) -> Result<std::fs::File> {
    let path = crate::config::pins_lock_path(file);
    let locked = (|| {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options.open(&path)?;
        lock.lock()?;
        Ok::<_, std::io::Error>(lock)
    })();
    locked.map_err(|e| {
        Error::usage(format!(
            "cannot lock {} (which keeps two runs of palreg-client from saving the institution \
             key fingerprints they trust at once): {e}",
            path.display()
        ))
    })
}

fn pin_file_error(file: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::usage(format!(
        "cannot read {} (the institution key fingerprints this client trusts): {e}; \
         it was left as it is",
        file.display()
    ))
}

/// Opens every key version of the institution the caller holds, oldest first, with its link
/// (during a key rotation some passports are still sealed under an older version than the
/// newest one).
fn open_envelopes(
    api: &Api,
    me: &Me,
    pair: &UserKeyPair,
    institution_id: i64,
) -> Result<(Vec<InstitutionKey>, Vec<Option<String>>)> {
    let mut envelopes: Vec<_> = api
        .envelopes()?
        .into_iter()
        .filter(|e| e.institution_id == institution_id)
        .collect();
    envelopes.sort_by_key(|e| e.key_version);
    let mut keys = Vec::with_capacity(envelopes.len());
    let mut links = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let version = u32::try_from(envelope.key_version)
            .map_err(|_| Error::usage("bad key version from the server"))?;
        let key = pair
            .open_key_envelope(&envelope.envelope, me.id, institution_id, version)
            .map_err(|err| match err {
                client_crypto::CryptoError::DecryptionFailed => Error::usage(format!(
                    "the envelope of institution key version {version} stored for you does not \
                     open with your key: it was not made for you (anybody can store one). \
                     Nothing was sealed or saved; tell your administrator"
                )),
                other => other.into(),
            })?;
        keys.push(key);
        links.push(envelope.link);
    }
    Ok((keys, links))
}

/// Assesses the versions held with the pins of `scope`, then pins every trusted version not
/// pinned yet (an error when the pins cannot be saved).
///
/// When there is something to pin, the versions are judged again under the pin file's lock,
/// with the pins as they are then: a verdict reached on pins another run has since added to
/// (trust on first use, when that run pinned a version of the account meanwhile) must not be
/// saved.
fn assess_and_pin(
    scope: &PinScope,
    institution_id: i64,
    keys: Vec<InstitutionKey>,
    links: Vec<Option<String>>,
    pins: &mut Pins,
) -> Result<HeldKeys> {
    let judge = |keys, links, pins: &Pins| {
        HeldKeys::new(
            institution_id,
            keys,
            links,
            pins.of(scope),
            pins.remembers_any(scope),
        )
    };
    let held = judge(keys, links, pins);
    if held.to_pin().is_empty() {
        return Ok(held);
    }
    let HeldKeys { keys, links, .. } = held;
    pins.update(scope, |pins| {
        let held = judge(keys, links, pins);
        let new = held.to_pin();
        (held, new)
    })
}

/// Opens every key version of the institution the caller holds, oldest first (during a key
/// rotation some passports are still sealed under an older version than the newest one),
/// assesses their key chain with `pins`, and pins every version trusted.
pub fn institution_keys(
    api: &Api,
    me: &Me,
    pair: &UserKeyPair,
    pins: &mut Pins,
) -> Result<HeldKeys> {
    let institution_id = institution_of(me)?;
    let (keys, links) = open_envelopes(api, me, pair, institution_id)?;
    let scope = PinScope::new(api.base(), me.id, institution_id);
    assess_and_pin(&scope, institution_id, keys, links, pins)
}

/// What `trust` did or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// Nothing to do: the version is trusted already. Its fingerprint.
    Already(Fingerprint),
    /// Not pinned: `confirmed` was false. The fingerprint to compare with a colleague who holds
    /// the version, and why it is not trusted.
    Unconfirmed(Fingerprint, Untrusted),
    /// Pinned: trusted from now on. Its fingerprint, and why the newest version held is still
    /// not trusted, if it is not.
    Pinned(Fingerprint, Option<Distrust>),
}

/// Pins `version` by hand, once the caller has `confirmed` that its fingerprint is the one a
/// colleague who holds it sees: for a version nothing vouches for (`key_unpinned`: the versions
/// this client trusted are no longer granted to the caller; `key_chain_gap`: the version
/// before it is not held or not trusted). Refused for a version whose key replaced one this
/// client trusted (`key_changed`) or whose link does not verify (`key_chain_broken`): those
/// are for the administrator. A version without a link is linked instead (`keys link`).
pub fn trust(
    api: &Api,
    pair: &UserKeyPair,
    version: u32,
    confirmed: bool,
    pins: &mut Pins,
) -> Result<Trusted> {
    let me = api.me()?;
    let institution_id = institution_of(&me)?;
    let scope = PinScope::new(api.base(), me.id, institution_id);
    let (keys, links) = open_envelopes(api, &me, pair, institution_id)?;
    let held = assess_and_pin(&scope, institution_id, keys, links, pins)?;
    let (Some(key), Some(verdict)) = (held.get(version), held.verdict(version)) else {
        return Err(Error::usage(format!(
            "you do not hold institution key version {version}"
        )));
    };
    let fingerprint = key.fingerprint(institution_id);
    let reason = match verdict {
        Ok(_) => return Ok(Trusted::Already(fingerprint)),
        Err(reason) => reason,
    };
    let own = Distrust {
        version,
        reason,
        refused: version,
    };
    match reason {
        Untrusted::Unpinned | Untrusted::Gap => {}
        Untrusted::KeyChanged | Untrusted::BadLink => {
            return Err(Error::usage(format!(
                "institution key version {version} (fingerprint {fingerprint}) is not trusted \
                 ({}): {}. Pinning it by hand is refused. Do not use version {version}: tell your \
                 administrator (the server's operator can withdraw a planted newest version with \
                 `palreg keys withdraw`).",
                reason.code(),
                own.why()
            )));
        }
        Untrusted::NoLink => {
            return Err(Error::usage(format!(
                "institution key version {version} is not trusted ({}): {}; it is not pinned by \
                 hand",
                reason.code(),
                own.why()
            )));
        }
    }
    if !confirmed {
        return Ok(Trusted::Unconfirmed(fingerprint, reason));
    }
    pins.pin(&scope, &[(version, fingerprint.to_string())])?;
    let HeldKeys { keys, links, .. } = held;
    let held = assess_and_pin(&scope, institution_id, keys, links, pins)?;
    Ok(Trusted::Pinned(fingerprint, held.distrust()))
}

/// What `link` did or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// Not linked: `confirmed` was false. The fingerprint to compare with the colleague who
    /// made the version.
    Unconfirmed(Fingerprint),
    /// The link was stored; the version's fingerprint.
    Stored(Fingerprint),
}

/// Adds the missing link of `version`, a version made before links were kept, made with the
/// version before it, once the caller has `confirmed` that `version`'s fingerprint is the one
/// the colleague who made it sees. Refused when the caller does not hold both versions, when
/// the version before is itself not trusted, and when the version has a link already.
pub fn link(
    api: &Api,
    pair: &UserKeyPair,
    version: u32,
    confirmed: bool,
    pins: &mut Pins,
) -> Result<Linked> {
    let me = api.me()?;
    let held = institution_keys(api, &me, pair, pins)?;
    let institution_id = held.institution_id;
    if version < 2 {
        return Err(Error::usage(
            "version 1 has nothing before it to link to: its fingerprint is what colleagues \
             compare (`keys trust --version 1` pins it once compared, when it is not trusted)",
        ));
    }
    let before = version - 1;
    let Some(next) = held.get(version) else {
        return Err(Error::usage(format!(
            "you do not hold institution key version {version}"
        )));
    };
    let Some(previous) = held.get(before) else {
        return Err(Error::usage(format!(
            "you do not hold institution key version {before}: only a holder of versions \
             {before} and {version} can link them"
        )));
    };
    if let Some(existing) = held.link_of(version) {
        return Err(Error::usage(
            match previous.verify_link(next, institution_id, existing) {
                Ok(()) => format!("version {version} is linked already; nothing to do"),
                Err(_) => format!(
                    "version {version} has a link already, and it does not verify under version \
                     {before}: do not use version {version}; tell your administrator"
                ),
            },
        ));
    }
    if held.verdict(before).is_some_and(|v| v.is_err()) {
        return Err(Error::usage(format!(
            "version {before} is not trusted itself: link it first (`keys link --version {before}`), \
             or tell your administrator"
        )));
    }
    let fingerprint = next.fingerprint(institution_id);
    if !confirmed {
        return Ok(Linked::Unconfirmed(fingerprint));
    }
    api.put::<Value>(
        &format!("/api/v1/institutions/{institution_id}/keys/{version}/link"),
        &json!({"link": previous.link_to(next, institution_id)?}),
    )?;
    Ok(Linked::Stored(fingerprint))
}

/// A signed-in clinician holding the institution key: what every patient command needs.
pub struct Clinic {
    pub api: Api,
    pub me: Me,
    pub institution_id: i64,
    /// Every version held, oldest first; never empty.
    held: HeldKeys,
    pub bits: BlindIndexBits,
}

impl Clinic {
    /// Opens the caller's institution key versions, assesses their key chain with `pins` and
    /// pins every version trusted (see [`institution_keys`]).
    pub fn open(api: Api, pair: &UserKeyPair, bits: u8, pins: &mut Pins) -> Result<Clinic> {
        let me = api.me()?;
        let institution_id = institution_of(&me)?;
        let held = institution_keys(&api, &me, pair, pins)?;
        if held.all().is_empty() {
            return Err(no_key());
        }
        let bits = BlindIndexBits::new(bits)
            .map_err(|e| Error::usage(format!("blind-index bits: {e}")))?;
        Ok(Clinic {
            api,
            me,
            institution_id,
            held,
            bits,
        })
    }

    /// The key new and edited passports are sealed under, and their blind-index tokens
    /// computed with: the newest version held, or an error naming it and why when the key
    /// chain does not vouch for it (never seal under a planted key).
    pub fn key(&self) -> Result<&InstitutionKey> {
        self.held.sealing_key()
    }

    /// Every key version held, oldest first: for opening passports, never for sealing.
    pub fn keys(&self) -> &[InstitutionKey] {
        self.held.all()
    }

    /// The key versions the chain vouches for, oldest first: the only ones a search computes
    /// blind-index tokens under (a token under a planted key would hand the planter a
    /// dictionary-attackable digest of the value).
    pub fn token_keys(&self) -> Vec<&InstitutionKey> {
        self.held.trusted()
    }

    /// The held key of `version`, if any, trusted or not: for opening a passport.
    pub fn key_of_version(&self, version: u32) -> Option<&InstitutionKey> {
        self.held.get(version)
    }

    /// The versions held and their key chain.
    pub fn held(&self) -> &HeldKeys {
        &self.held
    }
}

/// The default blind-index length: the longest safe one (see `client_crypto::recommend_bits`)
/// for the expected number of patients of one institution.
pub fn default_bits(expected_patients: u64) -> u8 {
    client_crypto::recommend_bits(expected_patients, &[])
        .map(|r| r.recommended())
        .unwrap_or(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(versions: &[u32]) -> Vec<InstitutionKey> {
        versions
            .iter()
            .map(|v| InstitutionKey::generate(*v).unwrap())
            .collect()
    }

    fn versions<'a>(keys: impl IntoIterator<Item = &'a InstitutionKey>) -> Vec<u32> {
        keys.into_iter().map(InstitutionKey::version).collect()
    }

    fn states(held: &HeldKeys) -> Vec<VersionTrust> {
        held.states().into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn without_pins_only_the_vouched_for_chain_seals_and_computes_tokens() {
        let keys = chain(&[1, 2, 3]);
        let link = |i: usize| Some(keys[i - 1].link_to(&keys[i], 9).unwrap());

        // A sound chain: everything trusted, sealing under the newest, all to be pinned.
        let held = HeldKeys::new(
            9,
            chain_copy(&keys),
            vec![None, link(1), link(2)],
            None,
            false,
        );
        assert_eq!(versions(held.trusted()), [1, 2, 3]);
        assert_eq!(held.sealing_key().unwrap().version(), 3);
        assert!(held.distrust().is_none() && held.problems().is_empty());
        assert_eq!(
            states(&held),
            [
                VersionTrust::FirstUse,
                VersionTrust::Linked,
                VersionTrust::Linked
            ]
        );
        let to_pin: Vec<u32> = held.to_pin().into_iter().map(|(v, _)| v).collect();
        assert_eq!(to_pin, [1, 2, 3]);

        // Version 2 without a link: 2 and 3 only open, nothing is sealed.
        let held = HeldKeys::new(9, chain_copy(&keys), vec![None, None, link(2)], None, false);
        assert_eq!(versions(held.trusted()), [1]);
        assert_eq!(versions(held.untrusted()), [2, 3]);
        assert_eq!(versions(held.all()), [1, 2, 3]);
        let distrust = held.distrust().unwrap();
        assert_eq!(
            (distrust.version, distrust.refused, distrust.reason),
            (2, 3, Untrusted::NoLink)
        );
        assert_eq!(held.problems(), [held.distrust_of(2).unwrap()]);
        let refused = held.sealing_key().unwrap_err().to_string();
        assert!(
            refused.contains("version 3 is not trusted (key_chain_missing)")
                && refused.contains("follows version 2")
                && refused.contains("tell your administrator"),
            "{refused}"
        );
        assert_eq!(
            states(&held),
            [
                VersionTrust::FirstUse,
                VersionTrust::Untrusted(Untrusted::NoLink),
                VersionTrust::AfterUntrusted(2)
            ]
        );

        // Version 2 not held: 3 has nothing to vouch for it.
        let gap = vec![chain_copy(&keys).remove(0), chain_copy(&keys).remove(2)];
        let held = HeldKeys::new(9, gap, vec![None, link(2)], None, false);
        assert_eq!(versions(held.trusted()), [1]);
        assert_eq!(held.distrust().unwrap().reason, Untrusted::Gap);
        assert!(
            held.distrust()
                .unwrap()
                .why()
                .contains("keys trust --version 3")
        );
        assert!(matches!(held.sealing_key(), Err(Error::UntrustedKey(_))));

        // Nothing held: nothing to seal under.
        let held = HeldKeys::new(9, Vec::new(), Vec::new(), None, false);
        assert!(held.distrust().is_none() && held.states().is_empty());
        assert!(matches!(held.sealing_key(), Err(Error::Usage(_))));
    }

    #[test]
    fn pins_judge_each_version_on_its_own() {
        let keys = chain(&[1, 2, 3]);
        let link = |i: usize| Some(keys[i - 1].link_to(&keys[i], 9).unwrap());
        let fingerprint = |i: usize| keys[i].fingerprint(9).to_string();
        let pinned_1_2 = BTreeMap::from([(1, fingerprint(0)), (2, fingerprint(1))]);

        // Version 1's envelope replaced: key_changed; version 2, pinned, and 3, linked to it,
        // are still trusted, and 3 seals. Only 3 is new to pin.
        let mut replaced = chain_copy(&keys);
        replaced[0] = InstitutionKey::generate(1).unwrap();
        let held = HeldKeys::new(
            9,
            replaced,
            vec![None, link(1), link(2)],
            Some(&pinned_1_2),
            true,
        );
        assert_eq!(
            states(&held),
            [
                VersionTrust::Untrusted(Untrusted::KeyChanged),
                VersionTrust::Pinned,
                VersionTrust::Linked
            ]
        );
        assert_eq!(versions(held.trusted()), [2, 3]);
        assert_eq!(held.sealing_key().unwrap().version(), 3);
        assert!(held.distrust().is_none());
        let problems = held.problems();
        assert_eq!(
            problems,
            [Distrust {
                version: 1,
                reason: Untrusted::KeyChanged,
                refused: 1
            }]
        );
        assert!(
            problems[0].why().contains("replaced"),
            "{}",
            problems[0].why()
        );
        assert_eq!(held.to_pin(), [(3, fingerprint(2))]);

        // The same with nothing pinned after it: 2 follows an untrusted version; sealing is
        // refused, naming where the trouble starts.
        let pinned_1 = BTreeMap::from([(1, fingerprint(0))]);
        let mut replaced = chain_copy(&keys[..2]);
        replaced[0] = InstitutionKey::generate(1).unwrap();
        let held = HeldKeys::new(9, replaced, vec![None, link(1)], Some(&pinned_1), true);
        assert_eq!(
            states(&held),
            [
                VersionTrust::Untrusted(Untrusted::KeyChanged),
                VersionTrust::AfterUntrusted(1)
            ]
        );
        assert!(held.trusted().is_empty() && held.to_pin().is_empty());
        let refused = held.sealing_key().unwrap_err().to_string();
        assert!(
            refused.contains("version 2 is not trusted (key_changed)")
                && refused.contains("follows version 1"),
            "{refused}"
        );

        // Every version this client knew gone, a new one left: not a first use.
        let held = HeldKeys::new(9, chain_copy(&keys[2..]), vec![link(2)], None, true);
        assert_eq!(
            states(&held),
            [VersionTrust::Untrusted(Untrusted::Unpinned)]
        );
        let refused = held.sealing_key().unwrap_err().to_string();
        assert!(
            refused.contains("(key_unpinned)") && refused.contains("keys trust --version 3"),
            "{refused}"
        );
    }

    #[test]
    fn pins_are_kept_per_server_account_and_institution() {
        let here = PinScope::new("https://Palreg.example:443/", 7, 3);
        assert_eq!(here.key(), "https://palreg.example|7|3");
        assert_eq!(PinScope::new("https://palreg.example", 7, 3), here);
        assert_ne!(PinScope::new("https://palreg.example:8443", 7, 3), here);
        assert_eq!(
            PinScope::new("http://10.0.0.1:80", 1, 1).key(),
            "http://10.0.0.1|1|1"
        );

        let mut pins = Pins::in_memory();
        pins.pin(&here, &[(1, "a".into())]).unwrap();
        assert_eq!(pins.of(&here).unwrap()[&1], "a");
        assert!(pins.remembers_any(&here));
        // Another institution of the same account: not a first use either.
        let moved = PinScope::new("https://palreg.example", 7, 4);
        assert!(pins.of(&moved).is_none() && pins.remembers_any(&moved));
        // Another account, another server: nothing remembered.
        assert!(!pins.remembers_any(&PinScope::new("https://palreg.example", 8, 3)));
        assert!(!pins.remembers_any(&PinScope::new("https://other.example", 7, 3)));
        // A version pinned is never changed.
        pins.pin(&here, &[(1, "b".into()), (2, "c".into())])
            .unwrap();
        assert_eq!(pins.of(&here).unwrap()[&1], "a");
        assert_eq!(pins.of(&here).unwrap()[&2], "c");
    }

    #[test]
    fn the_pin_file_is_private_written_only_when_something_is_new_and_never_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = crate::config::pins_path(dir.path());
        let here = PinScope::new("http://127.0.0.1:8080", 7, 3);
        let mut pins = Pins::open(&file).unwrap();
        assert!(!pins.remembers_any(&here) && !file.exists());
        pins.pin(&here, &[(1, "11111 22222".into())]).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"http://127.0.0.1:8080|7|3": {"1": "11111 22222"}})
        );
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(&file).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            meta.ino()
        };

        // Nothing new: the file is not written again.
        let mut again = Pins::open(&file).unwrap();
        assert_eq!(again.of(&here).unwrap()[&1], "11111 22222");
        again.pin(&here, &[(1, "11111 22222".into())]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        }

        // Another run pinned meanwhile: kept; a conflicting pin is refused.
        let mut other = Pins::open(&file).unwrap();
        other.pin(&here, &[(2, "33333".into())]).unwrap();
        pins.pin(&here, &[(3, "44444".into())]).unwrap();
        assert_eq!(
            Pins::open(&file)
                .unwrap()
                .of(&here)
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            [&1, &2, &3]
        );
        let mut stale = Pins::in_memory();
        stale.file = Some(file.clone());
        let conflict = stale.pin(&here, &[(2, "55555".into())]).unwrap_err();
        assert!(conflict.to_string().contains("meanwhile"), "{conflict}");

        // A damaged file is an error (forgetting it would trust on first use again), and is
        // left as it is.
        std::fs::write(&file, "{not json").unwrap();
        let err = Pins::open(&file).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("key-pins.json"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{not json");

        // A file that cannot be written is an error too (here: a folder where the temporary
        // file would go).
        let blocked = tempfile::tempdir().unwrap();
        let file = crate::config::pins_path(blocked.path());
        std::fs::create_dir(
            blocked
                .path()
                .join(format!(".key-pins.json.{}.tmp", std::process::id())),
        )
        .unwrap();
        let mut pins = Pins::open(&file).unwrap();
        let err = pins.pin(&here, &[(1, "x".into())]).unwrap_err().to_string();
        assert!(err.contains("cannot save"), "{err}");
        assert!(!file.exists());
    }

    /// Runs of palreg-client at the same time, each pinning a version of its own after all of
    /// them read the pin file: every pin lands. The runs are threads here, each with its own
    /// `Pins` and its own handle on the lock file, as separate processes have (the lock belongs
    /// to the open file, not to the process).
    #[test]
    fn runs_at_the_same_time_merge_their_pins() {
        const RUNS: u32 = 8;
        const ROUNDS: u32 = 10;
        let dir = tempfile::tempdir().unwrap();
        let file = crate::config::pins_path(dir.path());
        let here = PinScope::new("http://127.0.0.1:8080", 7, 3);
        let there = PinScope::new("http://127.0.0.1:8080", 8, 3);
        for round in 0..ROUNDS {
            let mut runs: Vec<Pins> = (0..RUNS).map(|_| Pins::open(&file).unwrap()).collect();
            let start = std::sync::Barrier::new(RUNS as usize);
            std::thread::scope(|threads| {
                for (run, pins) in (0..).zip(runs.iter_mut()) {
                    let (start, here, there) = (&start, &here, &there);
                    threads.spawn(move || {
                        let version = round * RUNS + run + 1;
                        let scope = if run % 2 == 0 { here } else { there };
                        start.wait();
                        pins.pin(scope, &[(version, format!("fingerprint {version}"))])
                            .unwrap();
                    });
                }
            });
        }
        let pins = Pins::open(&file).unwrap();
        let mut versions: Vec<u32> = [&here, &there]
            .iter()
            .flat_map(|scope| pins.of(scope).unwrap().keys().copied())
            .collect();
        versions.sort_unstable();
        assert_eq!(versions, (1..=RUNS * ROUNDS).collect::<Vec<_>>());
        assert_eq!(pins.of(&here).unwrap()[&1], "fingerprint 1");

        let lock = crate::config::pins_lock_path(&file);
        assert_eq!(lock.file_name().unwrap(), "key-pins.lock");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&lock).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A run that judged its versions on pins read before another run pinned the account's
    /// first version does not trust its own oldest on first use: judged again under the lock,
    /// it is `key_unpinned`, and nothing of it is pinned.
    #[test]
    fn versions_are_judged_again_on_the_pins_read_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let file = crate::config::pins_path(dir.path());
        let here = PinScope::new("http://127.0.0.1:8080", 7, 3);
        let keys = chain(&[1, 2]);
        let mut late = Pins::open(&file).unwrap();
        // Meanwhile another run pinned version 1.
        Pins::open(&file)
            .unwrap()
            .pin(&here, &[(1, keys[0].fingerprint(3).to_string())])
            .unwrap();
        // This run holds only version 2 now (version 1 withdrawn from it).
        let only_2 = chain_copy(&keys[1..]);
        let link = keys[0].link_to(&keys[1], 3).unwrap();
        let held = assess_and_pin(&here, 3, only_2, vec![Some(link)], &mut late).unwrap();
        assert_eq!(
            states(&held),
            [VersionTrust::Untrusted(Untrusted::Unpinned)]
        );
        let pinned = Pins::open(&file).unwrap();
        assert_eq!(
            pinned.of(&here).unwrap().keys().collect::<Vec<_>>(),
            [&1],
            "version 2 is not pinned"
        );
    }

    /// The same keys again (an institution key is not `Clone`): wrapped and opened.
    fn chain_copy(keys: &[InstitutionKey]) -> Vec<InstitutionKey> {
        let pair = UserKeyPair::generate().unwrap();
        keys.iter()
            .map(|k| {
                let envelope = k.wrap_for(pair.public_key(), 1, 9).unwrap();
                pair.open_key_envelope(&envelope, 1, 9, k.version())
                    .unwrap()
            })
            .collect()
    }
}
