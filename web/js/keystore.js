// My key pair and the institution key, for the pages that seal or open passports. The wrapped
// key file (the private key under my passphrase, client-crypto's format) is the only thing kept:
// in IndexedDB, per login. The unlocked key pair and the opened institution key are WASM handles
// in this module's memory; they are forgotten on sign-out or reload. No passphrase or raw key is
// ever stored.

import { get } from './api.js';
import { loadCrypto } from './crypto.js';

const DB_NAME = 'palreg-keys';
const STORE = 'keyfiles';

let unlocked = null; // { userId, pair }
let institutionKey = null; // { userId, institutionId, version, key }

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

/** Forgets the unlocked key pair and the institution key. */
export function forgetKeys() {
  institutionKey?.key.free();
  institutionKey = null;
  unlocked?.pair.free();
  unlocked = null;
}

/**
 * The institution key of the current version, opened from my envelope; null when my key is not
 * unlocked or I hold no envelope. Cached for the version it was opened for.
 */
export async function openInstitutionKey(user, { signal } = {}) {
  const pair = unlockedPair(user.id);
  const institutionId = user.institution?.id;
  if (!pair || !institutionId) return null;
  const envelopes = (await get('/me/envelopes', { signal })).filter((e) => e.institution_id === institutionId);
  if (!envelopes.length) return null;
  const newest = envelopes.reduce((a, b) => (b.key_version > a.key_version ? b : a));
  if (institutionKey && institutionKey.userId === user.id && institutionKey.institutionId === institutionId && institutionKey.version === newest.key_version) {
    return institutionKey.key;
  }
  await loadCrypto();
  const key = pair.openKeyEnvelope(newest.envelope, user.id, institutionId, newest.key_version);
  institutionKey?.key.free();
  institutionKey = { userId: user.id, institutionId, version: newest.key_version, key };
  return key;
}

/** The institution key when it is already open (no request). */
export function openedInstitutionKey(user) {
  return institutionKey && institutionKey.userId === user.id ? institutionKey.key : null;
}
