// Key rotation, in the browser: a new institution key version made in WASM and wrapped to every
// current holder, then every passport re-encrypted under it — opened with the key of its old
// version, sealed with the new one, its blind indexes recomputed, written back with the
// patient's version (optimistic concurrency). The state lives on the server: the passports
// still under an older version are what is left to do (`passports_pending_rotation`, search
// `key_version_below`), so a closed tab or a cancelled run is continued from the Keys page.
//
// Sealed observation notes stay under the version they were written with: the API has no route
// to replace a note, so holders keep their envelopes of old versions to open them.

import { ApiError, get, post, put } from './api.js';
import { openInstitutionKey, openInstitutionKeys } from './keystore.js';
import { openPassport, sealPassport } from './passports.js';

/** Patients fetched per search page while re-encrypting. */
const PAGE = 100;
/** Writes in flight at once. */
const PARALLEL = 3;
/** Attempts per patient when someone else saves it meanwhile (409 stale_version). */
const ATTEMPTS = 4;

/**
 * Creates key version `members.current_version + 1`: generated in WASM, wrapped to me and stored,
 * then wrapped to each other holder of the current version (`holders`, as the user saw them).
 * Resolves to the new version. The generated key never leaves WASM memory.
 */
export async function createNextVersion({ wasm, user, pair, members, holders }) {
  const institutionId = user.institution.id;
  const version = members.current_version + 1;
  const key = wasm.InstitutionKey.generate(version);
  try {
    await post(`/institutions/${institutionId}/keys`, { version, envelope: key.wrapFor(pair.publicKey, user.id, institutionId) });
    for (const m of holders) {
      if (m.user_id === user.id) continue;
      await post(`/institutions/${institutionId}/keys/${version}/envelopes`, { recipient_id: m.user_id, envelope: key.wrapFor(m.public_key, m.user_id, institutionId) });
    }
  } finally {
    key.free();
  }
  return version;
}

/**
 * Re-encrypts every passport sealed under a version below the current one. `onProgress({ done,
 * total, skipped })` after each patient; `signal` cancels (writes in flight are aborted; one that
 * reached the server already counts there, and the next run skips it). Resolves to
 * `{ status: 'done'|'cancelled', done, total, skipped }`, where `skipped` lists the ids of
 * passports that no key I hold opens (a colleague holding that version must continue).
 */
export async function reencryptPassports({ user, signal, onProgress = () => {} }) {
  const institutionId = user.institution.id;
  const target = await openInstitutionKey(user, { signal });
  if (!target) throw new Error('no institution key');
  const version = target.version;
  const keys = await openInstitutionKeys(user, { signal });
  const state = { done: 0, total: 0, skipped: [] };
  // Aborted by the caller (cancel) or by the first failed write, which stops the other writers.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener('abort', onAbort);

  /** One patient: open, seal anew, write; on a stale version reload it and try again. */
  async function one(patient) {
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
        await put(`/patients/${patient.id}`, { version: patient.version, record: patient.record, ...sealed }, { signal: stop.signal });
        return true;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'stale_version') || attempt >= ATTEMPTS) throw err;
      }
      patient = await get(`/patients/${patient.id}`, { signal: stop.signal });
    }
  }

  async function run() {
    let after = null;
    let first = true;
    while (!signal.aborted) {
      let page;
      try {
        page = await post('/patients/search', { key_version_below: version, limit: PAGE, after }, { signal: stop.signal });
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
          const patient = queue.shift();
          try {
            if (await one(patient)) state.done++;
            else state.skipped.push(patient.id);
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
  }

  try {
    return await run();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
