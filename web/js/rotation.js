// Key rotation, in the browser: a new institution key version made in WASM and wrapped to every
// current holder, then every passport re-encrypted under it — opened with the key of its old
// version, sealed with the new one, its blind indexes recomputed, written back with the
// patient's version (optimistic concurrency) — and every sealed observation note re-sealed under
// it (same text, same note_ref, written back only if still under the version it was opened at).
// The state lives on the server: what is still under an older version is what is left to do
// (`passports_pending_rotation` and `notes_pending_rotation`, found by search
// `key_version_below` and `GET /observations/sealed-notes`), so a closed tab or a cancelled run
// is continued from the Keys page.
//
// The new version is linked to the current one (client-crypto key_chain): the link, made with
// the current key, is what tells every holder's browser that the new version comes from a holder
// of the current one and not from whoever can write to the server's database. So only a holder
// whose browser vouches for the current version (keystore.js) may rotate, and only such a
// version is sealed under.

import { ApiError, get, post, put } from './api.js';
import { t } from './i18n.js';
import { openInstitutionKey, openInstitutionKeys } from './keystore.js';
import { trustedFingerprint } from './members.js';
import { NOTE_PURPOSE, openPassport, sealPassport } from './passports.js';

/** Patients or notes fetched per page while re-encrypting. */
const PAGE = 100;
/** Writes in flight at once. */
const PARALLEL = 3;
/** Attempts per patient when someone else saves it meanwhile (409 stale_version). */
const ATTEMPTS = 4;

/**
 * The holders other than me, each public key checked against its fingerprint (members.js):
 * throws MemberKeyError naming the first that fails.
 */
export function checkedHolders(wasm, user, holders) {
  const others = holders.filter((m) => m.user_id !== user.id);
  for (const m of others) trustedFingerprint(wasm, m);
  return others;
}

/** A rotation refused before anything was written; `message` is for the user (translated). */
export class RotationRefused extends Error {
  constructor(message) {
    super(message);
    this.name = 'RotationRefused';
    this.forUser = true; // errorMessage (api.js) shows it as is
  }
}

/**
 * The key of the current version (`members.current_version`), which links the next one: it must
 * be the newest version I hold and vouched for by the key chain. Throws UntrustedKeyError
 * (keystore.js) when the chain does not vouch for it, RotationRefused when I do not hold it.
 */
async function currentKey(user, members) {
  const current = await openInstitutionKey(user);
  if (!current || current.version !== members.current_version) {
    throw new RotationRefused(t('keys.chain.rotate_not_held', { version: members.current_version }));
  }
  return current;
}

/**
 * Creates key version `members.current_version + 1`: generated in WASM, linked to the current
 * version (whose key I must hold, vouched for by the key chain), wrapped to me and stored with
 * its link, then wrapped to each other holder of the current version (`holders`, as the user saw
 * them). Resolves to the new version. The generated key never leaves WASM memory. Every holder's
 * public key is checked against its fingerprint first (members.js): one that fails throws
 * MemberKeyError naming the holder, and a current version I do not hold or that the chain does
 * not vouch for throws RotationRefused or UntrustedKeyError, before anything is written.
 */
export async function createNextVersion({ wasm, user, pair, members, holders }) {
  const institutionId = user.institution.id;
  const version = members.current_version + 1;
  const others = checkedHolders(wasm, user, holders);
  const current = await currentKey(user, members);
  const key = wasm.InstitutionKey.generate(version);
  try {
    const link = current.linkTo(key, institutionId);
    await post(`/institutions/${institutionId}/keys`, { version, envelope: key.wrapFor(pair.publicKey, user.id, institutionId), link });
    for (const m of others) {
      await post(`/institutions/${institutionId}/keys/${version}/envelopes`, { recipient_id: m.user_id, envelope: key.wrapFor(m.public_key, m.user_id, institutionId) });
    }
  } finally {
    key.free();
  }
  return version;
}

/**
 * Runs `one(item, signal)` over every item of the pages `fetchPage(after, signal)` returns
 * (`{ total, items, next_after }`), PARALLEL at a time. `one` resolves true when done, false when
 * the item cannot be opened with the keys I hold (skipped). `signal` cancels; the first failed
 * write stops the others and is thrown. Resolves to `{ status: 'done'|'cancelled', done, total,
 * skipped }`, calling `onProgress` with the same after each item.
 */
async function drain({ signal, fetchPage, one, onProgress }) {
  const state = { done: 0, total: 0, skipped: [] };
  // Aborted by the caller (cancel) or by the first failed write, which stops the other writers.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener('abort', onAbort);
  try {
    let after = null;
    let first = true;
    while (!signal.aborted) {
      let page;
      try {
        page = await fetchPage(after, stop.signal);
      } catch (err) {
        if (signal.aborted) break;
        throw err;
      }
      if (first) {
        state.total = page.total;
        first = false;
        onProgress({ ...state });
      }
      const queue = [...page.items];
      let failure = null;
      const worker = async () => {
        while (queue.length && !stop.signal.aborted) {
          const item = queue.shift();
          try {
            if (await one(item, stop.signal)) state.done++;
            else state.skipped.push(item.id);
          } catch (err) {
            failure ??= err;
            stop.abort();
            return;
          }
          onProgress({ ...state });
        }
      };
      await Promise.all(Array.from({ length: PARALLEL }, worker));
      if (signal.aborted) break;
      if (failure) throw failure;
      if (!page.next_after) return { status: 'done', ...state };
      after = page.next_after;
    }
    return { status: 'cancelled', ...state };
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The current key (the target: the newest version I hold, vouched for by the key chain, else
 * UntrustedKeyError) and every version I hold (to open); null when `signal` cancelled the run
 * while they were fetched.
 */
async function rotationKeys(user, signal) {
  try {
    const target = await openInstitutionKey(user, { signal });
    if (!target) throw new Error('no institution key');
    return { target, keys: await openInstitutionKeys(user, { signal }) };
  } catch (err) {
    if (signal.aborted && err?.name === 'AbortError') return null;
    throw err;
  }
}

/** The outcome of a run cancelled before it found anything to do. */
const cancelledEarly = () => ({ status: 'cancelled', done: 0, total: 0, skipped: [] });

/**
 * Re-encrypts every passport sealed under a version below the current one. `onProgress({ done,
 * total, skipped })` after each patient; `signal` cancels, at any point (writes in flight
 * are aborted; one that reached the server already counts there, and the next run skips it).
 * Resolves to `{ status: 'done'|'cancelled', done, total, skipped }`, where `skipped` lists the
 * ids of passports that no key I hold opens (a colleague holding that version must continue).
 */
export async function reencryptPassports({ user, signal, onProgress = () => {} }) {
  const institutionId = user.institution.id;
  const opened = await rotationKeys(user, signal);
  if (!opened) return cancelledEarly();
  const { target, keys } = opened;
  const version = target.version;

  /** One patient: open, seal anew, write; on a stale version reload it and try again. */
  async function one(patient, stop) {
    for (let attempt = 1; ; attempt++) {
      if (patient.passport_key_version >= version) return true;
      let passport;
      try {
        passport = openPassport(keys, patient, institutionId);
      } catch {
        return false;
      }
      const sealed = sealPassport(target, passport, patient.pseudonym, institutionId);
      try {
        await put(`/patients/${patient.id}`, { version: patient.version, record: patient.record, ...sealed }, { signal: stop });
        return true;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'stale_version') || attempt >= ATTEMPTS) throw err;
      }
      patient = await get(`/patients/${patient.id}`, { signal: stop });
    }
  }

  const fetchPage = (after, stop) => post('/patients/search', { key_version_below: version, limit: PAGE, after }, { signal: stop });
  return drain({ signal, fetchPage, one, onProgress });
}

/**
 * Re-seals every observation note sealed under a version below the current one: the same text
 * and note_ref under the current key (needs the `medical_records` permission). Same contract as
 * `reencryptPassports`; `skipped` lists observation ids whose note no key I hold opens. A note a
 * colleague re-sealed meanwhile (409 `stale_version`) counts as done.
 */
export async function reencryptNotes({ user, signal, onProgress = () => {} }) {
  const institutionId = user.institution.id;
  const opened = await rotationKeys(user, signal);
  if (!opened) return cancelledEarly();
  const { target, keys } = opened;
  const version = target.version;

  async function one(item, stop) {
    const key = keys.get(item.note_key_version);
    if (!key) return false;
    const { note_ref: noteRef, sealed } = item.note;
    let text;
    try {
      text = key.openNote(sealed, NOTE_PURPOSE, item.pseudonym, institutionId, noteRef);
    } catch {
      return false;
    }
    const note = { note_ref: noteRef, sealed: target.sealNote(text, NOTE_PURPOSE, item.pseudonym, institutionId, noteRef) };
    try {
      await put(`/observations/${item.id}/note`, { from_key_version: item.note_key_version, note }, { signal: stop });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'stale_version')) throw err;
    }
    return true;
  }

  const fetchPage = (after, stop) => get('/observations/sealed-notes', { query: { key_version_below: version, limit: PAGE, after }, signal: stop });
  return drain({ signal, fetchPage, one, onProgress });
}
