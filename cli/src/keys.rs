//! The user's key pair (a passphrase-wrapped key file) and the institution key.

use std::path::Path;

use client_crypto::key_chain::{self, Untrusted};
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
    /// Why the chain stops, when it does.
    pub distrust: Option<Distrust>,
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
    let held = institution_keys(api, &me, pair)?;
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
        skipped: held
            .untrusted()
            .iter()
            .map(InstitutionKey::version)
            .filter(|v| !holds(*v))
            .collect(),
        distrust: held.distrust(),
    };
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

/// Why the key chain does not vouch for the newest versions the caller holds: the first held
/// version it stops at, and the newest held (which every later one follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distrust {
    /// The first held version that is not trusted.
    pub version: u32,
    /// Why not.
    pub reason: Untrusted,
    /// The newest version held: what sealing would use.
    pub newest: u32,
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
                 holder to grant you version {before})"
            ),
        }
    }
}

impl std::fmt::Display for Distrust {
    /// The refusal to seal under [`Self::newest`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "institution key version {} is not trusted ({}): ",
            self.newest,
            self.reason.code()
        )?;
        if self.newest != self.version {
            write!(
                f,
                "it follows version {}, which is not trusted: ",
                self.version
            )?;
        }
        write!(
            f,
            "{}. Nothing was sealed or saved. Do not use version {}: tell your administrator.",
            self.why(),
            self.newest
        )
    }
}

/// How far the key chain vouches for one held version (see `client_crypto::key_chain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionTrust {
    /// The oldest version held: nothing before it vouches for it; its fingerprint is what
    /// colleagues compare.
    FirstUse,
    /// Its link verifies under the (trusted) version before it.
    Linked,
    /// The first version the chain stops at, and why.
    Untrusted(Untrusted),
    /// It follows an untrusted version (this one).
    AfterUntrusted(u32),
}

impl VersionTrust {
    pub fn is_trusted(&self) -> bool {
        matches!(self, VersionTrust::FirstUse | VersionTrust::Linked)
    }
}

/// The institution key versions the caller holds, oldest first, with their links and how far
/// the key chain vouches for them. Anybody can wrap a key to the caller's public key, so a
/// version is trusted only when its chain from the oldest version held verifies
/// (`client_crypto::key_chain::trusted_prefix`). Every version held may open passports; only
/// trusted ones may seal them or compute blind-index tokens, and nothing is sealed while the
/// newest held is untrusted.
pub struct HeldKeys {
    pub institution_id: i64,
    keys: Vec<InstitutionKey>,
    links: Vec<Option<String>>,
    trusted: usize,
    reason: Option<Untrusted>,
}

impl HeldKeys {
    fn new(institution_id: i64, keys: Vec<InstitutionKey>, links: Vec<Option<String>>) -> Self {
        let (trusted, reason) = key_chain::trusted_prefix(&keys, institution_id, |version| {
            keys.iter()
                .position(|k| k.version() == version)
                .and_then(|i| links[i].as_deref())
        });
        HeldKeys {
            institution_id,
            keys,
            links,
            trusted,
            reason,
        }
    }

    /// Every version held, oldest first: for opening passports only.
    pub fn all(&self) -> &[InstitutionKey] {
        &self.keys
    }

    /// The versions the chain vouches for, oldest first: for sealing and blind-index tokens.
    pub fn trusted(&self) -> &[InstitutionKey] {
        &self.keys[..self.trusted]
    }

    /// The versions held that the chain does not vouch for, oldest first.
    pub fn untrusted(&self) -> &[InstitutionKey] {
        &self.keys[self.trusted..]
    }

    /// The held key of `version`, if any (trusted or not).
    pub fn get(&self, version: u32) -> Option<&InstitutionKey> {
        self.keys.iter().find(|k| k.version() == version)
    }

    /// The server's link of a held `version`.
    pub fn link_of(&self, version: u32) -> Option<&str> {
        let i = self.keys.iter().position(|k| k.version() == version)?;
        self.links[i].as_deref()
    }

    /// Where the chain stops, if it does.
    pub fn distrust(&self) -> Option<Distrust> {
        let reason = self.reason?;
        Some(Distrust {
            version: self.keys[self.trusted].version(),
            reason,
            newest: self.keys.last()?.version(),
        })
    }

    /// The trust state of each version held, oldest first.
    pub fn states(&self) -> Vec<(&InstitutionKey, VersionTrust)> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let state = match (i, self.reason) {
                    (0, _) => VersionTrust::FirstUse,
                    (i, _) if i < self.trusted => VersionTrust::Linked,
                    (i, Some(reason)) if i == self.trusted => VersionTrust::Untrusted(reason),
                    _ => VersionTrust::AfterUntrusted(self.keys[self.trusted].version()),
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
}

/// Opens every key version of the institution the caller holds, oldest first (during a key
/// rotation some passports are still sealed under an older version than the newest one), and
/// checks their key chain.
pub fn institution_keys(api: &Api, me: &Me, pair: &UserKeyPair) -> Result<HeldKeys> {
    let institution_id = institution_of(me)?;
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
        keys.push(pair.open_key_envelope(&envelope.envelope, me.id, institution_id, version)?);
        links.push(envelope.link);
    }
    Ok(HeldKeys::new(institution_id, keys, links))
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
pub fn link(api: &Api, pair: &UserKeyPair, version: u32, confirmed: bool) -> Result<Linked> {
    let me = api.me()?;
    let held = institution_keys(api, &me, pair)?;
    let institution_id = held.institution_id;
    if version < 2 {
        return Err(Error::usage(
            "version 1 has nothing before it to link to: it is trusted on first use",
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
    if let Some((_, state)) = held
        .states()
        .into_iter()
        .find(|(k, _)| k.version() == before)
        && !state.is_trusted()
    {
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
    pub fn open(api: Api, pair: &UserKeyPair, bits: u8) -> Result<Clinic> {
        let me = api.me()?;
        let institution_id = institution_of(&me)?;
        let held = institution_keys(&api, &me, pair)?;
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
    pub fn token_keys(&self) -> &[InstitutionKey] {
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

    #[test]
    fn only_the_vouched_for_prefix_seals_and_computes_tokens() {
        let keys = chain(&[1, 2, 3]);
        let link = |i: usize| Some(keys[i - 1].link_to(&keys[i], 9).unwrap());
        let versions = |ks: &[InstitutionKey]| ks.iter().map(|k| k.version()).collect::<Vec<_>>();

        // A sound chain: everything trusted, sealing under the newest.
        let held = HeldKeys::new(9, chain_copy(&keys), vec![None, link(1), link(2)]);
        assert_eq!(versions(held.trusted()), [1, 2, 3]);
        assert_eq!(held.sealing_key().unwrap().version(), 3);
        assert!(held.distrust().is_none());
        let states: Vec<_> = held.states().into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            states,
            [
                VersionTrust::FirstUse,
                VersionTrust::Linked,
                VersionTrust::Linked
            ]
        );

        // Version 2 without a link: 2 and 3 only open, nothing is sealed.
        let held = HeldKeys::new(9, chain_copy(&keys), vec![None, None, link(2)]);
        assert_eq!(versions(held.trusted()), [1]);
        assert_eq!(versions(held.untrusted()), [2, 3]);
        assert_eq!(versions(held.all()), [1, 2, 3]);
        let distrust = held.distrust().unwrap();
        assert_eq!(
            (distrust.version, distrust.newest, distrust.reason),
            (2, 3, Untrusted::NoLink)
        );
        let refused = held.sealing_key().unwrap_err().to_string();
        assert!(
            refused.contains("version 3 is not trusted (key_chain_missing)")
                && refused.contains("follows version 2")
                && refused.contains("tell your administrator"),
            "{refused}"
        );
        let states: Vec<_> = held.states().into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            states,
            [
                VersionTrust::FirstUse,
                VersionTrust::Untrusted(Untrusted::NoLink),
                VersionTrust::AfterUntrusted(2)
            ]
        );

        // Version 2 not held: 3 has nothing to vouch for it.
        let gap = vec![chain_copy(&keys).remove(0), chain_copy(&keys).remove(2)];
        let held = HeldKeys::new(9, gap, vec![None, link(2)]);
        assert_eq!(versions(held.trusted()), [1]);
        assert_eq!(held.distrust().unwrap().reason, Untrusted::Gap);
        assert!(matches!(held.sealing_key(), Err(Error::UntrustedKey(_))));

        // Nothing held: nothing to seal under.
        let held = HeldKeys::new(9, Vec::new(), Vec::new());
        assert!(held.distrust().is_none() && held.states().is_empty());
        assert!(matches!(held.sealing_key(), Err(Error::Usage(_))));
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
