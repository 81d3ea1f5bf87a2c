//! The user's key pair (a passphrase-wrapped key file) and the institution key.

use std::path::Path;

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

/// Grants colleague `login` every institution key version the caller holds and the colleague
/// does not (during a rotation older passports are still sealed under an older version), after
/// `confirm` has accepted the colleague's fingerprint (computed here from the public key, not
/// taken from the server; a server listing another fingerprint for that key is refused).
/// Returns the versions granted, oldest first.
pub fn grant(
    api: &Api,
    pair: &UserKeyPair,
    login: &str,
    confirm: &mut dyn FnMut(&Member, &Fingerprint) -> bool,
) -> Result<Vec<u32>> {
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
    if held.is_empty() {
        return Err(no_key());
    }
    let mut granted = Vec::new();
    for key in held {
        let version = key.version();
        if colleague
            .holds
            .iter()
            .any(|v| u32::try_from(*v).ok() == Some(version))
        {
            continue;
        }
        api.post::<Value>(
            &format!("/api/v1/institutions/{institution_id}/keys/{version}/envelopes"),
            &json!({"recipient_id": colleague.user_id, "envelope": key.wrap_for(&public, colleague.user_id, institution_id)?}),
        )?;
        granted.push(version);
    }
    Ok(granted)
}

/// Opens the caller's envelope of the institution's newest key version it holds.
pub fn institution_key(api: &Api, me: &Me, pair: &UserKeyPair) -> Result<InstitutionKey> {
    institution_keys(api, me, pair)?.pop().ok_or_else(no_key)
}

fn no_key() -> Error {
    Error::usage(
        "you hold no institution key yet: `keys bootstrap` (first user) or ask a colleague to `keys grant` it",
    )
}

/// Opens every key version of the institution the caller holds, oldest first: during a key
/// rotation some passports are still sealed under an older version than the newest one.
pub fn institution_keys(api: &Api, me: &Me, pair: &UserKeyPair) -> Result<Vec<InstitutionKey>> {
    let institution_id = institution_of(me)?;
    let mut envelopes: Vec<_> = api
        .envelopes()?
        .into_iter()
        .filter(|e| e.institution_id == institution_id)
        .collect();
    envelopes.sort_by_key(|e| e.key_version);
    envelopes
        .iter()
        .map(|envelope| {
            let version = u32::try_from(envelope.key_version)
                .map_err(|_| Error::usage("bad key version from the server"))?;
            Ok(pair.open_key_envelope(&envelope.envelope, me.id, institution_id, version)?)
        })
        .collect()
}

/// A signed-in clinician holding the institution key: what every patient command needs.
pub struct Clinic {
    pub api: Api,
    pub me: Me,
    pub institution_id: i64,
    /// Every version held, oldest first; never empty.
    keys: Vec<InstitutionKey>,
    pub bits: BlindIndexBits,
}

impl Clinic {
    pub fn open(api: Api, pair: &UserKeyPair, bits: u8) -> Result<Clinic> {
        let me = api.me()?;
        let institution_id = institution_of(&me)?;
        let keys = institution_keys(&api, &me, pair)?;
        if keys.is_empty() {
            return Err(no_key());
        }
        let bits = BlindIndexBits::new(bits)
            .map_err(|e| Error::usage(format!("blind-index bits: {e}")))?;
        Ok(Clinic {
            api,
            me,
            institution_id,
            keys,
            bits,
        })
    }

    /// The newest key version held: what new and edited passports are sealed under.
    pub fn key(&self) -> &InstitutionKey {
        // `open` refuses a clinician who holds none.
        &self.keys[self.keys.len() - 1]
    }

    /// Every key version held, oldest first.
    pub fn keys(&self) -> &[InstitutionKey] {
        &self.keys
    }

    /// The held key of `version`, if any.
    pub fn key_of_version(&self, version: u32) -> Option<&InstitutionKey> {
        self.keys.iter().find(|k| k.version() == version)
    }
}

/// The default blind-index length: the longest safe one (see `client_crypto::recommend_bits`)
/// for the expected number of patients of one institution.
pub fn default_bits(expected_patients: u64) -> u8 {
    client_crypto::recommend_bits(expected_patients, &[])
        .map(|r| r.recommended())
        .unwrap_or(12)
}
