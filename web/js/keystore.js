// My key pair and the institution key, for the pages that seal or open passports. The wrapped
// key file (the private key under my passphrase, client-crypto's format) is the only thing kept:
// in IndexedDB, per login. The unlocked key pair and the opened institution key versions are WASM
// handles in this module's memory; they are forgotten on sign-out or reload. No passphrase or raw
// key is ever stored.
//
// After a key rotation, passports and observation notes not yet re-encrypted stay under older
// versions: every version I hold an envelope for can be opened.
//
// Sealing is another matter. Anybody who can write to the server's database can wrap a key of
// their choosing to my public key as "version N+1": sealing under it would hand new passports
// (and the blind indexes of names) to whoever planted it. So a version is used to seal or to
// compute blind-index tokens only when the key chain vouches for it (client-crypto key_chain,
// `trusted_prefix`): the oldest version I hold is trusted on first use, and each next one while
// it follows a trusted one directly and its link, made with the version before it, verifies.
// The first version that fails makes itself and every later one untrusted. Untrusted versions
// still open what is sealed under them: nothing leaves the browser then.

import { get } from './api.js';
import { loadCrypto } from './crypto.js';
import { t } from './i18n.js';

const DB_NAME = 'palreg-keys';
const STORE = 'keyfiles';

let unlocked = null; // { userId, pair }
// Opened institution keys of one user and institution: version -> InstitutionKey handle, and the
// key chain's verdict on them (`chain`, see keyChain) with the links it was computed from: a link
// the server adds later (a legacy version vouched for) or changes computes it again.
let institutionKeys = null; // { userId, institutionId, byVersion: Map, chain, chainLinks }

/** Why the newest version I hold may not seal: its `message` is for the user (translated). */
export class UntrustedKeyError extends Error {
  constructor({ version, reason, since }) {
    // Names the first version the chain does not vouch for: the later ones fail because of it.
    // One made before links were kept is most likely genuine and only waits to be vouched for.
    super(t(reason === 'key_chain_missing' ? 'keys.chain.refused_missing' : 'keys.chain.refused', { version: since, previous: since - 1 }));
    this.name = 'UntrustedKeyError';
    // Shown as is by errorMessage (api.js): expected, and already in the user's language.
    this.forUser = true;
    this.version = version;
    this.reason = reason;
    this.since = since;
  }
}

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const store = db.transaction(STORE, mode).objectStore(STORE);
      const req = fn(store);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  } finally {
    db.close();
  }
}

/** The wrapped key file stored for `login` (JSON text), or null. */
export async function storedKeyFile(login) {
  return (await tx('readonly', (s) => s.get(login))) ?? null;
}

/** Keeps the wrapped key file of `login` (JSON text). */
export function storeKeyFile(login, json) {
  return tx('readwrite', (s) => s.put(json, login));
}

/** Keeps the unlocked key pair of the user in memory. */
export function setUnlocked(userId, pair) {
  forgetKeys();
  unlocked = { userId, pair };
}

/** The unlocked key pair of the user, or null. */
export function unlockedPair(userId) {
  return unlocked && unlocked.userId === userId ? unlocked.pair : null;
}

/** Forgets the unlocked key pair and the institution keys. */
export function forgetKeys() {
  forgetInstitutionKeys();
  unlocked?.pair.free();
  unlocked = null;
}

function forgetInstitutionKeys() {
  for (const key of institutionKeys?.byVersion.values() ?? []) key.free();
  institutionKeys = null;
}

/** My envelopes for my institution, by key version, each with its version's link (one request). */
async function myEnvelopes(institutionId, signal) {
  const list = (await get('/me/envelopes', { signal })).filter((e) => e.institution_id === institutionId);
  return new Map(list.map((e) => [e.key_version, { envelope: e.envelope, link: e.link ?? null }]));
}

/** The opened key of `version` from `envelopes` (cached per version), or null without an envelope. */
async function keyOfVersion(user, pair, envelopes, version) {
  const institutionId = user.institution.id;
  if (!institutionKeys || institutionKeys.userId !== user.id || institutionKeys.institutionId !== institutionId) {
    forgetInstitutionKeys();
    institutionKeys = { userId: user.id, institutionId, byVersion: new Map(), chain: null, chainLinks: null };
  }
  const cached = institutionKeys.byVersion.get(version);
  if (cached) return cached;
  const held = envelopes.get(version);
  if (!held) return null;
  await loadCrypto();
  const key = pair.openKeyEnvelope(held.envelope, user.id, institutionId, version);
  institutionKeys.byVersion.set(version, key);
  return key;
}

/**
 * The key chain over `keys` (a Map version -> key, ascending) with the links of `envelopes`, as
 * client-crypto's `key_chain::trusted_prefix` computes it: per version, oldest first,
 * `{ version, trusted, reason, since }`. `reason` (null when trusted) is `key_chain_gap` (the
 * version before it is not held), `key_chain_missing` (no link: a version made before links
 * were kept) or `key_chain_broken` (its link was not made with the version before it), and for
 * the versions after the first failure the same reason; `since` is the first version that
 * failed.
 */
function verifyChain(keys, envelopes, institutionId) {
  const out = [];
  let failed = null; // { reason, since }
  let previous = null;
  for (const [version, key] of keys) {
    if (!failed && previous) {
      const link = envelopes.get(version).link;
      let reason = null;
      if (previous.version + 1 !== version) reason = 'key_chain_gap';
      else if (!link) reason = 'key_chain_missing';
      else if (!linkVerifies(previous, key, institutionId, link)) reason = 'key_chain_broken';
      if (reason) failed = { reason, since: version };
    }
    out.push({ version, trusted: !failed, reason: failed?.reason ?? null, since: failed?.since ?? null });
    previous = key;
  }
  return out;
}

/** Whether `link` vouches for `next` under `previous`; a malformed link vouches for nothing. */
function linkVerifies(previous, next, institutionId, link) {
  try {
    return previous.verifyLink(next, institutionId, link);
  } catch {
    return false;
  }
}

/**
 * Every version I hold, opened, and the key chain's verdict on them: `{ keys, chain }` (see
 * verifyChain), or null when my key is not unlocked or I have no institution. The verdict is
 * cached with the keys while the links stay the same.
 */
async function heldKeys(user, signal) {
  const pair = unlockedPair(user.id);
  if (!pair || !user.institution?.id) return null;
  const institutionId = user.institution.id;
  const envelopes = await myEnvelopes(institutionId, signal);
  const keys = new Map();
  for (const version of [...envelopes.keys()].sort((a, b) => a - b)) {
    keys.set(version, await keyOfVersion(user, pair, envelopes, version));
  }
  const links = JSON.stringify([...envelopes].map(([version, e]) => [version, e.link]).sort((a, b) => a[0] - b[0]));
  if (!institutionKeys?.chain || institutionKeys.chainLinks !== links) {
    if (keys.size) {
      institutionKeys.chain = verifyChain(keys, envelopes, institutionId);
      institutionKeys.chainLinks = links;
    }
  }
  return { keys, chain: keys.size ? institutionKeys.chain : [] };
}

/**
 * The institution key to seal with and to compute blind-index tokens with: the newest version I
 * hold, opened from my envelope, provided the key chain vouches for it. Null when my key is not
 * unlocked or I hold no envelope; throws UntrustedKeyError when the newest version I hold is not
 * vouched for (never falls back to an older one: the server refuses those, and the user must
 * hear about the planted key). Opened keys are cached per version.
 */
export async function openInstitutionKey(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  if (!held?.keys.size) return null;
  const newest = held.chain[held.chain.length - 1];
  if (!newest.trusted) throw new UntrustedKeyError(newest);
  return held.keys.get(newest.version);
}

/**
 * Every institution key version I hold, opened: a Map version -> key (newest last). Empty when my
 * key is not unlocked. Passports sealed under an older version open with the matching key. For
 * opening only: trustedInstitutionKeys gives the versions that may seal.
 */
export async function openInstitutionKeys(user, { signal } = {}) {
  return (await heldKeys(user, signal))?.keys ?? new Map();
}

/**
 * The versions I hold that the key chain vouches for, opened: a Map version -> key (newest
 * last), for blind-index tokens (search) and sealing. Empty when my key is not unlocked.
 */
export async function trustedInstitutionKeys(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  const out = new Map();
  for (const link of held?.chain ?? []) if (link.trusted) out.set(link.version, held.keys.get(link.version));
  return out;
}

/**
 * The key chain of the versions I hold, for the Keys page: oldest first, `{ version, key,
 * fingerprint, trusted, reason, since }` (see verifyChain; `fingerprint` is what colleagues
 * compare, `key` the opened handle). Empty when my key is not unlocked or I hold no envelope.
 */
export async function keyChainStatus(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  if (!held) return [];
  const institutionId = user.institution.id;
  return held.chain.map((link) => {
    const key = held.keys.get(link.version);
    return { ...link, key, fingerprint: key.fingerprint(institutionId) };
  });
}

/**
 * The institution key when it is already open (no request): the newest version opened, when the
 * key chain last computed vouches for it; else null.
 */
export function openedInstitutionKey(user) {
  if (!institutionKeys || institutionKeys.userId !== user.id || !institutionKeys.byVersion.size) return null;
  const newest = Math.max(...institutionKeys.byVersion.keys());
  const verdict = institutionKeys.chain?.find((link) => link.version === newest);
  return verdict?.trusted ? institutionKeys.byVersion.get(newest) : null;
}
