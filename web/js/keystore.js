// My key pair and the institution key, for the pages that seal or open passports. The wrapped
// key file (the private key under my passphrase, client-crypto's format) is kept in IndexedDB, per
// login, with the pins of the institution key's versions (below). The unlocked key pair and the
// opened institution key versions are WASM handles in this module's memory; they are forgotten on
// sign-out or reload. No passphrase or raw key is ever stored. Work that goes on using them in the
// background (a key rotation, pages/keys.js) says so (keysInUseUntil): forgotten keys are let go
// at once (no page gets them any more), but freed only once that work has ended, or after
// KEY_WORK_GRACE_MS, so that a write still winding down never meets a freed handle. Sign-out
// stops such work first (session.js) and waits for it (keyWorkEnded).
//
// After a key rotation, passports and observation notes not yet re-encrypted stay under older
// versions: every version I hold an envelope for can be opened.
//
// Sealing is another matter. Anybody who can write to the server's database can wrap a key of
// their choosing to my public key as "version N+1", or replace the envelope of a version I hold:
// sealing under such a key would hand new passports (and the blind indexes of names) to whoever
// planted it. So a version is used to seal or to compute blind-index tokens only when it is
// trusted by client-crypto's rule (`key_chain::assess`), which this browser applies with its
// *pins*: the fingerprint of every version it trusted before, per user and institution, kept in
// IndexedDB beside the key files. Per version I hold, oldest first:
// 1. a pinned version is trusted when its key still has the pinned fingerprint, else it is
//    `key_changed` (its envelope was replaced);
// 2. the oldest version I hold, unpinned, is trusted on first use when this browser has no pin at
//    all for me (in any institution), else it is `key_unpinned` (not a first use again);
// 3. any other is trusted when the version I hold before it is trusted and exactly one older
//    (else `key_chain_gap`), has a link (else `key_chain_missing`) and its link, made with that
//    version, verifies (else `key_chain_broken`).
// Every version trusted is pinned; a user pins one by hand (pinVersion) only after comparing its
// fingerprint with a colleague. Sealing uses the newest version I hold, only when it is trusted;
// tokens use the trusted versions. Untrusted versions still open what is sealed under them:
// nothing leaves the browser then. Pins are about the institution's keys, not mine: a new key
// pair (a forgotten passphrase) and sign-out keep them, and a colleague's new grant of the same
// keys matches them.
//
// The database (DB_NAME) is opened once per tab and the connection kept. When another tab asks
// for a newer version (palreg was updated there), this tab's connection gets `versionchange`: it
// closes at once, so that the other tab's upgrade goes on, and this tab refuses every further use
// of the store with an error that says to reload (KeyStoreOutdatedError), while the page shows
// the same notice (main.js, `palreg:keystore`). Closing waits for the transactions under way: a
// key file or pins being stored are written whole (one transaction each) or not at all. A
// database already newer than this code (VersionError) is the same case. While this tab's own
// opening waits for another tab that holds an older version open (`blocked`), the page asks to
// close or reload the other palreg tabs; the store is used as soon as they let go.

import { get } from './api.js';
import { loadCrypto } from './crypto.js';
import { t } from './i18n.js';

const DB_NAME = 'palreg-keys';
const DB_VERSION = 2;
const KEY_FILES = 'keyfiles';
const PINS = 'pins';

let unlocked = null; // { userId, pair }
// Opened institution keys of one user and institution: version -> { envelope, key } (a version
// whose envelope changes is opened again; the handle it replaces is freed with the others, in
// `retired`), and the verdict on them (`chain`, see assess) with what it was computed from
// (`chainInput`: envelopes, links and pins): any change computes it again.
let institutionKeys = null; // { userId, institutionId, byVersion: Map, retired: [], chain, chainInput }
// Promises of the end of the work using the keys in the background (keysInUseUntil).
const keyWork = new Set();
/** How long forgotten keys wait for that work before they are freed all the same. */
const KEY_WORK_GRACE_MS = 3000;

/** Why the newest version I hold may not seal: its `message` is for the user (translated). */
export class UntrustedKeyError extends Error {
  constructor({ version, reason, cause, since }) {
    // Names the version whose own verdict makes this one untrusted (`since`, `cause`): the later
    // ones fail because of it. One made before links were kept is most likely genuine and only
    // waits to be vouched for.
    const why = cause ?? reason;
    super(t(REFUSED[why] ?? 'keys.chain.refused', { version: since, previous: since - 1 }));
    this.name = 'UntrustedKeyError';
    // Shown as is by errorMessage (api.js): expected, and already in the user's language.
    this.forUser = true;
    this.version = version;
    this.reason = why;
    this.since = since;
  }
}

const REFUSED = {
  key_chain_missing: 'keys.chain.refused_missing',
  key_chain_gap: 'keys.chain.refused_gap',
  key_changed: 'keys.chain.refused_changed',
  key_unpinned: 'keys.chain.refused_unpinned',
  key_unreadable: 'keys.chain.refused_unreadable',
};

/** The key store cannot be used in this tab any more: another tab upgraded it. For the user. */
export class KeyStoreOutdatedError extends Error {
  constructor() {
    super(t('keystore.outdated'));
    this.name = 'KeyStoreOutdatedError';
    // Shown as is by errorMessage (api.js): expected, and already in the user's language.
    this.forUser = true;
  }
}

// The connection of this tab (a promise of it), opened on first use; null until then, and again
// after the browser closed it (site data cleared) or the database was deleted.
let connection = null;
// 'ready', 'blocked' (opening waits for another tab) or 'outdated' (for good, until a reload).
let storeState = 'ready';

/** The state of the key store in this tab: `ready`, `blocked` or `outdated` (see above). */
export function keyStoreState() {
  return storeState;
}

function setState(state) {
  if (state === storeState || storeState === 'outdated') return;
  storeState = state;
  window.dispatchEvent(new CustomEvent('palreg:keystore', { detail: { state } }));
}

function openDb() {
  if (storeState === 'outdated') return Promise.reject(new KeyStoreOutdatedError());
  if (connection) return connection;
  const opening = new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(KEY_FILES)) db.createObjectStore(KEY_FILES);
      if (!db.objectStoreNames.contains(PINS)) db.createObjectStore(PINS);
    };
    // Another tab holds an older version open: the upgrade (and so this request) waits until
    // that tab closes it, and succeeds then.
    req.onblocked = () => setState('blocked');
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = (event) => {
        db.close();
        if (connection === opening) connection = null;
        // Deleted (site data cleared in another tab): made again on next use, as on a first visit.
        if (event.newVersion !== null) setState('outdated');
      };
      db.onclose = () => {
        if (connection === opening) connection = null;
      };
      setState('ready');
      resolve(db);
    };
    req.onerror = () => {
      if (connection === opening) connection = null;
      if (req.error?.name === 'VersionError') {
        // The database is newer than this code: palreg was updated, this tab runs the old one.
        setState('outdated');
        reject(new KeyStoreOutdatedError());
        return;
      }
      if (storeState === 'blocked') setState('ready');
      reject(req.error);
    };
  });
  connection = opening;
  return opening;
}

/**
 * Opens the key store if need be; rejects with KeyStoreOutdatedError when this tab may not use it
 * any more. For the Keys page, before a new key pair is published: its key file must be stored.
 */
export async function keyStoreReady() {
  await openDb();
}

/**
 * A transaction on `storeName` of `db` (an open connection, just awaited: the caller makes its
 * requests at once). A connection closed under it (the versionchange above, between the open and
 * now) refuses with the error for the user.
 */
function begin(db, storeName, mode) {
  try {
    return db.transaction(storeName, mode);
  } catch (err) {
    if (storeState === 'outdated') throw new KeyStoreOutdatedError();
    throw err;
  }
}

/** Runs `fn(store)` in a transaction on `storeName`; resolves, once committed, to the result of the request it makes. */
async function tx(storeName, mode, fn) {
  const transaction = begin(await openDb(), storeName, mode);
  return new Promise((resolve, reject) => {
    let result;
    const req = fn(transaction.objectStore(storeName));
    req.onsuccess = () => {
      result = req.result;
    };
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

/** The wrapped key file stored for `login` (JSON text), or null. */
export async function storedKeyFile(login) {
  return (await tx(KEY_FILES, 'readonly', (s) => s.get(login))) ?? null;
}

/** Keeps the wrapped key file of `login` (JSON text). */
export function storeKeyFile(login, json) {
  return tx(KEY_FILES, 'readwrite', (s) => s.put(json, login));
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

/**
 * Forgets the unlocked key pair and the institution keys (never the pins: see above). They are
 * gone for every caller at once; their handles are freed now, or once the work still using them
 * has ended (keysInUseUntil).
 */
export function forgetKeys() {
  const pair = unlocked?.pair ?? null;
  const keys = institutionKeys;
  unlocked = null;
  institutionKeys = null;
  const free = () => {
    freeInstitutionKeys(keys);
    pair?.free();
  };
  if (keyWork.size) keyWorkEnded().then(free);
  else free();
}

function forgetInstitutionKeys() {
  freeInstitutionKeys(institutionKeys);
  institutionKeys = null;
}

function freeInstitutionKeys(state) {
  for (const { key } of state?.byVersion.values() ?? []) key.free();
  for (const key of state?.retired ?? []) key.free();
}

/**
 * Says that the keys are in use, in the background, until `ended` (a promise) settles: forgotten
 * keys are freed only then (forgetKeys). Whoever forgets them must stop that work first.
 */
export function keysInUseUntil(ended) {
  const work = Promise.resolve(ended)
    .catch(() => {})
    .finally(() => keyWork.delete(work));
  keyWork.add(work);
}

/**
 * Resolves once the work using the keys now (keysInUseUntil) has ended, to true; or to false
 * after `timeout` ms if it has not.
 */
export function keyWorkEnded({ timeout = KEY_WORK_GRACE_MS } = {}) {
  if (!keyWork.size) return Promise.resolve(true);
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), timeout);
  });
  return Promise.race([Promise.all(keyWork).then(() => true), late]).finally(() => clearTimeout(timer));
}

/**
 * Throws an AbortError when `pair` (my unlocked key pair when the caller started) was forgotten
 * meanwhile (sign-out): nothing more is opened with it, nor kept.
 */
function stillUnlocked(pair) {
  if (unlocked?.pair !== pair) throw new DOMException('The keys were forgotten', 'AbortError');
}

const pinsKey = (userId, institutionId) => `${userId}:${institutionId}`;

/** The fingerprints this browser pinned for the user's institution key: `{ [version]: fingerprint }`. */
async function storedPins(userId, institutionId) {
  return (await tx(PINS, 'readonly', (s) => s.get(pinsKey(userId, institutionId)))) ?? {};
}

/**
 * Whether this browser pinned any institution key for the user, in any institution. As in
 * palreg-client: an account moved (by whoever can write the database) to an institution with a
 * planted key does not get that key trusted on first use; a user really moved compares the new
 * institution's fingerprint with a colleague once.
 */
async function pinnedAnyInstitution(userId) {
  const keys = await tx(PINS, 'readonly', (s) => s.getAllKeys());
  return keys.some((key) => String(key).startsWith(`${userId}:`));
}

/**
 * Pins `entries` (`{ [version]: fingerprint }`) for the user's institution key, in one
 * transaction (another tab may pin meanwhile): a version pinned already keeps its pin, a pin is
 * never changed. Resolves to the pins stored.
 */
async function addPins(userId, institutionId, entries) {
  const transaction = begin(await openDb(), PINS, 'readwrite');
  return new Promise((resolve, reject) => {
    const store = transaction.objectStore(PINS);
    const key = pinsKey(userId, institutionId);
    let pins = null;
    const req = store.get(key);
    req.onsuccess = () => {
      pins = { ...(req.result ?? {}) };
      const fresh = Object.entries(entries).filter(([version]) => pins[version] === undefined);
      for (const [version, fingerprint] of fresh) pins[version] = fingerprint;
      if (fresh.length) store.put(pins, key);
    };
    transaction.oncomplete = () => resolve(pins);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}

/** My envelopes for my institution, by key version, each with its version's link (one request). */
async function myEnvelopes(institutionId, signal) {
  const list = (await get('/me/envelopes', { signal })).filter((e) => e.institution_id === institutionId);
  return new Map(list.map((e) => [e.key_version, { envelope: e.envelope, link: e.link ?? null }]));
}

/** The cache of the opened keys of `user` (a fresh one for another user or institution). */
function keysOf(user) {
  const institutionId = user.institution.id;
  if (!institutionKeys || institutionKeys.userId !== user.id || institutionKeys.institutionId !== institutionId) {
    forgetInstitutionKeys();
    institutionKeys = { userId: user.id, institutionId, byVersion: new Map(), retired: [], chain: null, chainInput: null };
  }
  return institutionKeys;
}

/** The key of `version` opened from `held` (my envelope of it), cached while the envelope stays the same. */
async function keyOfVersion(user, pair, state, held, version) {
  const cached = state.byVersion.get(version);
  if (cached?.envelope === held.envelope) return cached.key;
  await loadCrypto();
  stillUnlocked(pair);
  const key = pair.openKeyEnvelope(held.envelope, user.id, state.institutionId, version);
  // A replaced envelope: the key it held may still be in a page's hands, so it is freed later.
  if (cached) state.retired.push(cached.key);
  state.byVersion.set(version, { envelope: held.envelope, key });
  return key;
}

/**
 * The verdict on the versions I hold, `keys` (a Map version -> key, ascending), with the links of
 * `envelopes`, this browser's `pins` and whether it pinned anything for me (`anyPins`), as
 * client-crypto's `key_chain::assess` gives it (see the
 * rule above). Per version, oldest first: `{ version, fingerprint, trusted, vouched, reason,
 * cause, since }`. `vouched` (null when untrusted) is `pinned`, `first_use` or `linked`;
 * `reason` (null when trusted) is the version's own: `key_changed`, `key_unpinned`,
 * `key_chain_gap` (the version before it is not held, or not trusted), `key_chain_missing` (no
 * link: a version made before links were kept) or `key_chain_broken` (its link was not made with
 * the version before it). `since` and `cause` name the version whose own verdict makes this one
 * untrusted, and why: the version itself, or for a version right after an untrusted one, that
 * one's.
 */
function assess(keys, envelopes, institutionId, pins, anyPins) {
  const out = [];
  for (const [version, key] of keys) {
    const fingerprint = key.fingerprint(institutionId);
    const previous = out[out.length - 1] ?? null;
    const pinned = pins[version];
    let vouched = null;
    let reason = null;
    if (pinned !== undefined) {
      if (fingerprint === pinned) vouched = 'pinned';
      else reason = 'key_changed';
    } else if (!previous) {
      if (anyPins) reason = 'key_unpinned';
      else vouched = 'first_use';
    } else if (!previous.trusted || previous.version + 1 !== version) {
      reason = 'key_chain_gap';
    } else {
      const link = envelopes.get(version).link;
      if (!link) reason = 'key_chain_missing';
      else if (!linkVerifies(keys.get(previous.version), key, institutionId, link)) reason = 'key_chain_broken';
      else vouched = 'linked';
    }
    const inherited = reason === 'key_chain_gap' && previous && !previous.trusted && previous.version + 1 === version;
    out.push({
      version,
      fingerprint,
      trusted: reason === null,
      vouched,
      reason,
      cause: inherited ? previous.cause : reason,
      since: reason === null ? null : inherited ? previous.since : version,
    });
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

/** What a verdict is computed from, as text: my envelopes with their links, and the pins. */
function chainInput(envelopes, pins) {
  const held = [...envelopes].sort((a, b) => a[0] - b[0]).map(([version, e]) => [version, e.envelope, e.link]);
  const pinned = Object.entries(pins).sort((a, b) => Number(a[0]) - Number(b[0]));
  return JSON.stringify({ held, pinned });
}

/** `chain` (see assess) with a verdict `key_unreadable` for each version in `unreadable`, by version. */
function withUnreadable(chain, unreadable) {
  const failed = unreadable.map((version) => ({
    version,
    fingerprint: null,
    trusted: false,
    vouched: null,
    reason: 'key_unreadable',
    cause: 'key_unreadable',
    since: version,
  }));
  return [...chain, ...failed].sort((a, b) => a.version - b.version);
}

/**
 * Every version I hold, opened, and the verdict on them: `{ keys, chain }` (see assess), or null
 * when my key is not unlocked or I have no institution. The versions trusted are pinned. The
 * verdict is cached with the keys while my envelopes, their links and the pins stay the same;
 * pinning what it trusts changes no verdict, so it stays cached then (and keeps saying why each
 * version was trusted first: on first use, or by its link).
 */
async function heldKeys(user, signal) {
  const pair = unlockedPair(user.id);
  if (!pair || !user.institution?.id) return null;
  const institutionId = user.institution.id;
  const envelopes = await myEnvelopes(institutionId, signal);
  stillUnlocked(pair);
  const state = keysOf(user);
  const keys = new Map();
  // An envelope my key does not open (not made for me: anybody can store one) is a version I
  // cannot use, not a reason to stop every page: it is judged `key_unreadable`, the others go on.
  const unreadable = [];
  for (const version of [...envelopes.keys()].sort((a, b) => a - b)) {
    try {
      keys.set(version, await keyOfVersion(user, pair, state, envelopes.get(version), version));
    } catch (err) {
      if (!String(err?.message ?? err).startsWith('decryption_failed')) throw err;
      unreadable.push(version);
    }
  }
  if (!keys.size && !unreadable.length) return { keys, chain: [] };
  const pins = await storedPins(user.id, institutionId);
  const anyPins = Object.keys(pins).length > 0 || (await pinnedAnyInstitution(user.id));
  stillUnlocked(pair);
  if (!state.chain || state.chainInput !== chainInput(envelopes, pins)) {
    const chain = withUnreadable(assess(keys, envelopes, institutionId, pins, anyPins), unreadable);
    const fresh = chain.filter((v) => v.trusted && pins[v.version] === undefined);
    if (fresh.length) await addPins(user.id, institutionId, Object.fromEntries(fresh.map((v) => [v.version, v.fingerprint])));
    state.chain = chain;
    state.chainInput = chainInput(envelopes, { ...pins, ...Object.fromEntries(fresh.map((v) => [v.version, v.fingerprint])) });
  }
  return { keys, chain: state.chain };
}

/**
 * The institution key to seal with and to compute blind-index tokens with: the newest version I
 * hold, opened from my envelope, provided it is trusted. Null when my key is not unlocked or I
 * hold no envelope; throws UntrustedKeyError when the newest version I hold is not trusted (never
 * falls back to an older one: the server refuses those, and the user must hear about the planted
 * or replaced key). Opened keys are cached per version.
 */
export async function openInstitutionKey(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  if (!held?.chain.length) return null;
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
 * The versions I hold that are trusted, opened: a Map version -> key (newest last), for
 * blind-index tokens (search). A trusted version may follow an untrusted one (a pinned version
 * after a replaced one). Empty when my key is not unlocked.
 */
export async function trustedInstitutionKeys(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  const out = new Map();
  for (const verdict of held?.chain ?? []) if (verdict.trusted) out.set(verdict.version, held.keys.get(verdict.version));
  return out;
}

/**
 * The verdict on the versions I hold, for the Keys page: oldest first, `{ version, key,
 * fingerprint, trusted, vouched, reason, cause, since }` (see assess; `fingerprint` is what
 * colleagues compare, `key` the opened handle). Empty when my key is not unlocked or I hold no
 * envelope.
 */
export async function keyChainStatus(user, { signal } = {}) {
  const held = await heldKeys(user, signal);
  if (!held) return [];
  return held.chain.map((verdict) => ({ ...verdict, key: held.keys.get(verdict.version) }));
}

/**
 * Trusts `version` by hand: the user compared its fingerprint (`fingerprint`, as shown) with a
 * colleague's, so this browser pins it. Only for a version the rule cannot vouch for, without a
 * pin of its own: `key_unpinned` (new oldest version) or `key_chain_gap`. Never for a replaced key
 * (`key_changed`), a broken link, or one to vouch for with a link (`key_chain_missing`). Throws an
 * error for the user when the key is not the one shown any more (or no longer needs or allows it).
 */
export async function pinVersion(user, version, { fingerprint = null } = {}) {
  const held = await heldKeys(user);
  const verdict = held?.chain.find((v) => v.version === version);
  if (verdict?.trusted && (fingerprint === null || verdict.fingerprint === fingerprint)) return;
  const allowed = verdict && (verdict.reason === 'key_unpinned' || verdict.reason === 'key_chain_gap');
  if (!allowed || (fingerprint !== null && verdict.fingerprint !== fingerprint)) {
    const err = new Error(t('keys.chain.trust_refused', { version }));
    err.forUser = true;
    throw err;
  }
  await addPins(user.id, user.institution.id, { [version]: verdict.fingerprint });
}

/**
 * The institution key when it is already open (no request): the newest version I held when the
 * verdict was last computed, when it is trusted; else null.
 */
export function openedInstitutionKey(user) {
  if (!institutionKeys || institutionKeys.userId !== user.id || !institutionKeys.chain?.length) return null;
  const newest = institutionKeys.chain[institutionKeys.chain.length - 1];
  return newest.trusted ? institutionKeys.byVersion.get(newest.version)?.key ?? null : null;
}
