//! The key chain: each institution key version after the first is linked to the one before it,
//! so that a holder of the earlier version can tell a genuine rotation from a key planted by
//! whoever can write to the server's database.
//!
//! Anybody can wrap a key to a user's public key: a key envelope says nothing about who made
//! it. Without the chain, an attacker with write access to the database (or a compromised
//! server) could store, for every member, an envelope of a "version N+1" that the attacker
//! chose, and every browser would seal new passports under it. The link of version N+1 is
//! `HMAC-SHA256(K_chain(N), binding(institution, N, N+1) ‖ K(N+1))`, where `K_chain(N)` is
//! derived from the key of version N with HKDF-SHA256 (info `palreg/key-chain/v1`). Only a
//! holder of version N can make it; the server stores it beside the version and checks only
//! its shape. A client accepts a version for sealing when its whole chain, from the oldest
//! version the client holds, verifies ([`trusted_prefix`]).
//!
//! The oldest version a client holds has nothing before it to vouch for it: it is trusted on
//! first use, and its [`InstitutionKey::fingerprint`] is what two colleagues compare, as they
//! compare public-key fingerprints when one grants the key to the other.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::{Binding, b64_decode, b64_encode};
use crate::{CryptoError, Fingerprint, Format, InstitutionKey, ShapeError};

/// Domain-separation label of the chain key derived from a version's key.
pub const KEY_CHAIN_DOMAIN: &str = "palreg/key-chain/v1";
/// Domain-separation label of institution key fingerprints.
pub const INSTITUTION_KEY_FINGERPRINT_DOMAIN: &str = "palreg/institution-key-fingerprint/v1";
/// Length of a link in bytes (before base64url).
pub const KEY_CHAIN_LINK_LEN: usize = 32;

/// Why a held version is not trusted for sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// The version before it is not held (or not trusted), so nothing vouches for it.
    Gap,
    /// The server has no link for it.
    NoLink,
    /// Its link does not verify under the version before it: not made by a holder of that
    /// version.
    BadLink,
    /// The client remembers another key for this version (see [`assess`]): the envelope was
    /// replaced.
    KeyChanged,
    /// The oldest version held is new to a client that remembers other versions of this
    /// institution's key: it is not trusted on first use again (see [`assess`]).
    Unpinned,
}

impl Untrusted {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Untrusted::Gap => "key_chain_gap",
            Untrusted::NoLink => "key_chain_missing",
            Untrusted::BadLink => "key_chain_broken",
            Untrusted::KeyChanged => "key_changed",
            Untrusted::Unpinned => "key_unpinned",
        }
    }
}

fn link_bytes(
    previous: &InstitutionKey,
    next: &InstitutionKey,
    institution_id: i64,
) -> Result<[u8; KEY_CHAIN_LINK_LEN], CryptoError> {
    if previous.version().checked_add(1) != Some(next.version()) {
        return Err(CryptoError::InvalidInput {
            field: "key version",
            reason: "a link joins a version to the one right after it",
        });
    }
    let mut chain_key = Zeroizing::new([0u8; 32]);
    let expanded = Hkdf::<Sha256>::new(None, previous.bytes())
        .expand(KEY_CHAIN_DOMAIN.as_bytes(), &mut *chain_key);
    debug_assert!(
        expanded.is_ok(),
        "32 bytes is a valid HKDF-SHA256 output length"
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&*chain_key)
        .expect("HMAC accepts keys of any length");
    let mut binding = Binding::new(KEY_CHAIN_DOMAIN);
    binding
        .i64(institution_id)
        .u32(previous.version())
        .u32(next.version());
    mac.update(binding.as_slice());
    mac.update(next.bytes());
    Ok(mac.finalize().into_bytes().into())
}

impl InstitutionKey {
    /// The link that vouches for `next` (this version + 1) of institution `institution_id`:
    /// base64url, to be stored with the new version.
    pub fn link_to(
        &self,
        next: &InstitutionKey,
        institution_id: i64,
    ) -> Result<String, CryptoError> {
        Ok(b64_encode(&link_bytes(self, next, institution_id)?))
    }

    /// Whether `link` vouches for `next` (this version + 1) of institution `institution_id`.
    /// A malformed link is a [`ShapeError`]; a well-formed one that was not made with this
    /// key, for this institution and these versions, and that exact next key, is
    /// [`CryptoError::DecryptionFailed`]. The comparison takes constant time.
    pub fn verify_link(
        &self,
        next: &InstitutionKey,
        institution_id: i64,
        link: &str,
    ) -> Result<(), CryptoError> {
        let given = check_link(link)?;
        let expected = link_bytes(self, next, institution_id)?;
        let mut diff = 0u8;
        for (a, b) in given.iter().zip(expected.iter()) {
            diff |= a ^ b;
        }
        if diff == 0 {
            Ok(())
        } else {
            Err(CryptoError::DecryptionFailed)
        }
    }

    /// The fingerprint of this key version for institution `institution_id`: what two
    /// colleagues compare to know that they hold the same key. As a public key's fingerprint,
    /// six groups of five digits, from SHA-256 over the domain label, the institution, the
    /// version and the key; it tells nothing about the key.
    pub fn fingerprint(&self, institution_id: i64) -> Fingerprint {
        let mut input = Binding::new(INSTITUTION_KEY_FINGERPRINT_DOMAIN);
        input.i64(institution_id).u32(self.version());
        let mut hasher = Sha256::new();
        hasher.update(input.as_slice());
        hasher.update(self.bytes());
        Fingerprint::from_digest(&hasher.finalize().into())
    }
}

/// Checks a link's structure without a key: base64url of exactly 32 bytes.
pub fn check_link(link: &str) -> Result<[u8; KEY_CHAIN_LINK_LEN], ShapeError> {
    let bytes = b64_decode(link, Format::KeyChainLink, KEY_CHAIN_LINK_LEN)?;
    bytes
        .try_into()
        .map_err(|_| ShapeError::InvalidLength(Format::KeyChainLink))
}

/// Which of the held versions a client without pins may seal under: [`assess`] with none.
/// `keys` are the versions it holds, oldest first (distinct versions); `link_of(version)` is
/// the server's link for a version. The oldest is trusted on first use; each next one is
/// trusted while it directly follows a trusted one and its link verifies under it. Returns how
/// many of `keys`, from the oldest, are trusted, and why the next one is not (`None` when all
/// are).
pub fn trusted_prefix<'a, K, L>(
    keys: &[K],
    institution_id: i64,
    link_of: L,
) -> (usize, Option<Untrusted>)
where
    K: AsRef<InstitutionKey>,
    L: Fn(u32) -> Option<&'a str>,
{
    let verdicts = assess(keys, institution_id, link_of, |_| None, false);
    let trusted = verdicts.iter().take_while(|v| v.is_ok()).count();
    (trusted, verdicts.get(trusted).and_then(|v| v.err()))
}

/// What vouches for a held version (see [`assess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouched {
    /// The oldest version held, by a client that remembers no version of this institution's
    /// key: trusted on first use (its fingerprint is what colleagues compare).
    FirstUse,
    /// The client remembers this version's fingerprint, and the key has it.
    Pinned,
    /// Its link verifies under the trusted version right before it.
    Linked,
}

/// The verdict on each held version, oldest first, for a client that remembers the
/// fingerprints of the versions it trusted before (its *pins*: `pin_of(version)`, and
/// `any_pins` when it remembers any version of this institution's key). Pins close what trust
/// on first use leaves open: an envelope replaced under a version the client already knew is
/// `KeyChanged`, and a new oldest version where the client knew others is `Unpinned` rather
/// than a fresh first use. In order:
///
/// 1. a pinned version is trusted when its fingerprint is the pinned one, else `KeyChanged`;
/// 2. the oldest version held, unpinned, is trusted on first use when there are no pins at
///    all, else `Unpinned`;
/// 3. any other is trusted when it follows a trusted version by exactly one (else `Gap`) and
///    has a link (else `NoLink`) that verifies under it (else `BadLink`).
///
/// A client seals only under the newest version held, and only when it is trusted; it computes
/// blind indexes only under trusted versions; it pins every version it trusts. Without pins
/// this is [`trusted_prefix`] (which calls it).
pub fn assess<'a, 'b, K, L, P>(
    keys: &[K],
    institution_id: i64,
    link_of: L,
    pin_of: P,
    any_pins: bool,
) -> Vec<Result<Vouched, Untrusted>>
where
    K: AsRef<InstitutionKey>,
    L: Fn(u32) -> Option<&'a str>,
    P: Fn(u32) -> Option<&'b str>,
{
    let mut out: Vec<Result<Vouched, Untrusted>> = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().map(AsRef::as_ref).enumerate() {
        let verdict = if let Some(pinned) = pin_of(key.version()) {
            if key.fingerprint(institution_id).as_str() == pinned {
                Ok(Vouched::Pinned)
            } else {
                Err(Untrusted::KeyChanged)
            }
        } else if i == 0 {
            if any_pins {
                Err(Untrusted::Unpinned)
            } else {
                Ok(Vouched::FirstUse)
            }
        } else {
            let previous = keys[i - 1].as_ref();
            let follows = previous.version().checked_add(1) == Some(key.version());
            match (out[i - 1], follows, link_of(key.version())) {
                (Err(_), ..) | (_, false, _) => Err(Untrusted::Gap),
                (_, _, None) => Err(Untrusted::NoLink),
                (Ok(_), true, Some(link)) => previous
                    .verify_link(key, institution_id, link)
                    .map(|()| Vouched::Linked)
                    .map_err(|_| Untrusted::BadLink),
            }
        };
        out.push(verdict);
    }
    out
}

impl AsRef<InstitutionKey> for InstitutionKey {
    fn as_ref(&self) -> &InstitutionKey {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(versions: &[u32]) -> Vec<InstitutionKey> {
        versions
            .iter()
            .map(|v| InstitutionKey::generate(*v).unwrap())
            .collect()
    }

    #[test]
    fn a_link_verifies_only_what_it_was_made_for() {
        let [k3, k4, other4] = <[InstitutionKey; 3]>::try_from(keys(&[3, 4, 4])).unwrap();
        let link = k3.link_to(&k4, 7).unwrap();
        assert_eq!(check_link(&link).unwrap().len(), 32);
        k3.verify_link(&k4, 7, &link).unwrap();
        assert_eq!(
            k3.verify_link(&other4, 7, &link),
            Err(CryptoError::DecryptionFailed),
            "another key for the same version"
        );
        assert_eq!(
            k3.verify_link(&k4, 8, &link),
            Err(CryptoError::DecryptionFailed),
            "another institution"
        );
        let stranger = InstitutionKey::generate(3).unwrap();
        assert_eq!(
            stranger.verify_link(&k4, 7, &link),
            Err(CryptoError::DecryptionFailed),
            "made without the previous key"
        );
        assert!(k4.link_to(&k3, 7).is_err(), "links go forward by one");
        assert!(matches!(
            k3.verify_link(&k4, 7, "AAAA"),
            Err(CryptoError::Shape(ShapeError::InvalidLength(
                Format::KeyChainLink
            )))
        ));
    }

    #[test]
    fn the_trusted_prefix_stops_at_the_first_doubtful_version() {
        let ks = keys(&[1, 2, 3, 4]);
        let links: Vec<String> = (1..4)
            .map(|i| ks[i - 1].link_to(&ks[i], 5).unwrap())
            .collect();
        let all = |v: u32| links.get(v as usize - 2).map(String::as_str);
        assert_eq!(trusted_prefix(&ks, 5, all), (4, None));
        assert_eq!(trusted_prefix(&ks[..1], 5, all), (1, None));
        assert_eq!(trusted_prefix(&ks[..0], 5, all), (0, None));
        // Another institution's chain does not hold.
        assert_eq!(trusted_prefix(&ks, 6, all), (1, Some(Untrusted::BadLink)));
        // A planted version 3: a key nobody holding version 2 linked.
        let mut planted = keys(&[1, 2, 3]);
        planted[0] = InstitutionKey::from_bytes(1, Zeroizing::new(*ks[0].bytes()));
        planted[1] = InstitutionKey::from_bytes(2, Zeroizing::new(*ks[1].bytes()));
        assert_eq!(
            trusted_prefix(&planted, 5, all),
            (2, Some(Untrusted::BadLink))
        );
        let no_third = |v: u32| if v == 3 { None } else { all(v) };
        assert_eq!(
            trusted_prefix(&ks, 5, no_third),
            (2, Some(Untrusted::NoLink))
        );
        let gap = [&ks[0], &ks[2], &ks[3]]
            .map(|k| InstitutionKey::from_bytes(k.version(), Zeroizing::new(*k.bytes())));
        assert_eq!(trusted_prefix(&gap, 5, all), (1, Some(Untrusted::Gap)));
    }

    #[test]
    fn pins_catch_a_replaced_key_and_a_new_anchor() {
        let ks = keys(&[1, 2, 3]);
        let links: Vec<String> = (1..3)
            .map(|i| ks[i - 1].link_to(&ks[i], 5).unwrap())
            .collect();
        let link = |v: u32| links.get(v as usize - 2).map(String::as_str);
        let fps: Vec<String> = ks.iter().map(|k| k.fingerprint(5).to_string()).collect();
        let none = |_: u32| None;
        // No pins: trust on first use, then the links (as trusted_prefix).
        use Vouched::*;
        assert_eq!(
            assess(&ks, 5, link, none, false),
            [Ok(FirstUse), Ok(Linked), Ok(Linked)]
        );
        // Pinned and unchanged.
        let pinned = |v: u32| fps.get(v as usize - 1).map(String::as_str);
        assert_eq!(
            assess(&ks, 5, link, pinned, true),
            [Ok(Pinned), Ok(Pinned), Ok(Pinned)]
        );
        // Version 1's envelope replaced by a key of the attacker's: no longer trusted on first
        // use, and version 2 (not pinned yet) is not vouched for by it; version 3, pinned, is.
        let mut swapped = keys(&[1]);
        swapped.push(InstitutionKey::from_bytes(
            2,
            Zeroizing::new(*ks[1].bytes()),
        ));
        swapped.push(InstitutionKey::from_bytes(
            3,
            Zeroizing::new(*ks[2].bytes()),
        ));
        let only_1_and_3 = |v: u32| (v != 2).then(|| pinned(v)).flatten();
        assert_eq!(
            assess(&swapped, 5, link, only_1_and_3, true),
            [Err(Untrusted::KeyChanged), Err(Untrusted::Gap), Ok(Pinned)]
        );
        // Every envelope the client knew removed, one new version left: not a first use.
        let only_first = |v: u32| (v == 1).then(|| fps[0].as_str());
        assert_eq!(
            assess(&ks[2..], 5, link, only_first, true),
            [Err(Untrusted::Unpinned)]
        );
        // A planted version after pinned ones.
        let mut planted = keys(&[3]);
        planted.insert(
            0,
            InstitutionKey::from_bytes(2, Zeroizing::new(*ks[1].bytes())),
        );
        let planted_link = keys(&[2])[0].link_to(&planted[1], 5).unwrap();
        let link3 = |v: u32| (v == 3).then_some(planted_link.as_str());
        assert_eq!(
            assess(&planted, 5, link3, only_1_and_3, true),
            [Err(Untrusted::Unpinned), Err(Untrusted::KeyChanged)]
        );
        let only_2 = |v: u32| (v == 2).then(|| fps[1].as_str());
        assert_eq!(
            assess(&planted, 5, link3, only_2, true),
            [Ok(Pinned), Err(Untrusted::BadLink)]
        );
    }

    #[test]
    fn fingerprints_tell_keys_apart() {
        let ks = keys(&[1, 1]);
        let fp = ks[0].fingerprint(3);
        assert_eq!(fp.as_str().len(), 6 * 5 + 5);
        assert_eq!(fp, ks[0].fingerprint(3));
        assert_ne!(fp, ks[1].fingerprint(3));
        assert_ne!(fp, ks[0].fingerprint(4));
        let same_bytes_v2 = InstitutionKey::from_bytes(2, Zeroizing::new(*ks[0].bytes()));
        assert_ne!(fp, same_bytes_v2.fingerprint(3));
    }
}
