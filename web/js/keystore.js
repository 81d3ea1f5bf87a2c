// My key pair and the institution key, for the pages that seal or open passports. The wrapped
// key file (the private key under my passphrase, client-crypto's format) is the only thing kept:
// in IndexedDB, per login. The unlocked key pair and the opened institution key versions are WASM
// handles in this module's memory; they are forgotten on sign-out or reload. No passphrase or raw
// key is ever stored.
//
// After a key rotation, passports and observation notes not yet re-encrypted stay under older
// versions: every version I hold an envelope for can be opened.

import { get } from './api.js';
import { loadCrypto } from './crypto.js';

const DB_NAME = 'palreg-keys';
const STORE = 'keyfiles';

let unlocked = null; // { userId, pair }
// Opened institution keys of one user and institution: version -> InstitutionKey handle.
let institutionKeys = null; // { userId, institutionId, byVersion: Map }

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

/** My envelopes for my institution, by key version (one request). */
async function myEnvelopes(institutionId, signal) {
  const list = (await get('/me/envelopes', { signal })).filter((e) => e.institution_id === institutionId);
  return new Map(list.map((e) => [e.key_version, e.envelope]));
}

/** The opened key of `version` from `envelopes` (cached per version), or null without an envelope. */
async function keyOfVersion(user, pair, envelopes, version) {
  const institutionId = user.institution.id;
  if (!institutionKeys || institutionKeys.userId !== user.id || institutionKeys.institutionId !== institutionId) {
    forgetInstitutionKeys();
    institutionKeys = { userId: user.id, institutionId, byVersion: new Map() };
  }
  const cached = institutionKeys.byVersion.get(version);
  if (cached) return cached;
  const envelope = envelopes.get(version);
  if (!envelope) return null;
  await loadCrypto();
  const key = pair.openKeyEnvelope(envelope, user.id, institutionId, version);
  institutionKeys.byVersion.set(version, key);
  return key;
}

/**
 * The institution key of the newest version I hold, opened from my envelope; null when my key is
 * not unlocked or I hold no envelope. Opened keys are cached per version.
 */
export async function openInstitutionKey(user, { signal } = {}) {
  const pair = unlockedPair(user.id);
  if (!pair || !user.institution?.id) return null;
  const envelopes = await myEnvelopes(user.institution.id, signal);
  if (!envelopes.size) return null;
  return keyOfVersion(user, pair, envelopes, Math.max(...envelopes.keys()));
}

/**
 * Every institution key version I hold, opened: a Map version -> key (newest last). Empty when my
 * key is not unlocked. Passports sealed under an older version open with the matching key.
 */
export async function openInstitutionKeys(user, { signal } = {}) {
  const pair = unlockedPair(user.id);
  const out = new Map();
  if (!pair || !user.institution?.id) return out;
  const envelopes = await myEnvelopes(user.institution.id, signal);
  for (const version of [...envelopes.keys()].sort((a, b) => a - b)) {
    out.set(version, await keyOfVersion(user, pair, envelopes, version));
  }
  return out;
}

/** The institution key when it is already open (no request): the newest version opened. */
export function openedInstitutionKey(user) {
  if (!institutionKeys || institutionKeys.userId !== user.id || !institutionKeys.byVersion.size) return null;
  return institutionKeys.byVersion.get(Math.max(...institutionKeys.byVersion.keys()));
}
