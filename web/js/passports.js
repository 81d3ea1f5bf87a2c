// Sealing and opening passports with institution key handles (WASM; see crypto.js), shared by
// the patient pages and the key rotation: the blind indexes a passport is stored with, and
// opening a passport with the key of the version it was sealed under.

/**
 * Bits of the blind indexes. Every client of an institution must use the same length or they
 * cannot find each other's patients: 12 is palreg-client's default too
 * (client_crypto::recommend_bits for 10,000 patients, CipherSweet's rule).
 */
export const INDEX_BITS = 12;

/**
 * The purpose an observation's note is bound to (client-crypto `NoteBinding`), with the
 * patient's pseudonym, the institution and the observation's note_ref: the medical record
 * seals and opens notes with it, the key rotation re-seals them.
 */
export const NOTE_PURPOSE = 'observation';

/**
 * The blind-index token of `value` for `field` under `key`, at the field's length for
 * INDEX_BITS: the date of birth's is 6 bits shorter, because the year of birth is in clear on
 * the record beside it (client-crypto's README, "Choosing the length"). A search by date of
 * birth therefore sends the year as a filter too (see `birthYear`).
 */
export function indexToken(key, field, value) {
  return key.indexToken(field, value, INDEX_BITS);
}

/**
 * The year of a date of birth (`YYYY-MM-DD`): the record's birth year, and the birth_year
 * filter that goes with a date-of-birth token in a search (without it the short token matches
 * every year's patients of its value). One function for both, so the filter finds the record.
 */
export function birthYear(dateOfBirth) {
  return Number.parseInt(dateOfBirth.slice(0, 4), 10);
}

/** Blind-index tokens of a passport under `key`: one per field the search offers. */
export function blindIndexes(key, passport) {
  // No compound surname + year of birth token: the year is in clear on the record, and beside
  // it such a token would tell which patients born in the same year share a surname.
  const tokens = [indexToken(key, 'surname', passport.surname), indexToken(key, 'date_of_birth', passport.date_of_birth)];
  if (passport.snils) tokens.push(indexToken(key, 'snils', passport.snils));
  if (passport.policy_number) tokens.push(indexToken(key, 'policy_number', passport.policy_number));
  return tokens;
}

/**
 * Opens the passport of a patient as the API returns it (`passport`, `pseudonym`,
 * `passport_key_version`) with the key of its version from `keys` (a Map version -> key, or a
 * single key). Returns the passport object; throws when no key of that version is held or the
 * envelope does not open.
 */
export function openPassport(keys, patient, institutionId) {
  const key = keys instanceof Map ? keys.get(patient.passport_key_version) : keys;
  if (!key) throw new Error(`no_key_version: version ${patient.passport_key_version} is not held`);
  return JSON.parse(openPassportJson(key, patient.passport, patient.pseudonym, institutionId));
}

/**
 * The native base64url decoder's options. Envelopes carry no padding, which `strict` would
 * require; the decoder's leniency (padding, whitespace) opens nothing it should not: the server
 * refuses non-canonical envelopes when they are stored, and AES-GCM authenticates the bytes.
 */
const BASE64URL = { alphabet: 'base64url', lastChunkHandling: 'loose' };

/** Where envelopes are decoded before they cross into WASM: ciphertext only, reused. */
let scratch = new Uint8Array(2048);

/**
 * Opens a passport envelope with `key` and returns the passport's JSON text. Where the
 * browser decodes base64 itself (`Uint8Array.prototype.setFromBase64`: Chromium 140,
 * Firefox 133, Safari 18.2 and later), the envelope is decoded natively into a reused buffer
 * and crosses into WASM as bytes: in Chromium ~1 µs, against ~6 µs to copy the 1.4 KB of
 * text in and decode it there (bench/wasm/browser.mjs). A text the native decoder refuses
 * still goes to WASM, whose error names what is wrong with it.
 */
export function openPassportJson(key, envelope, pseudonym, institutionId) {
  if (typeof scratch.setFromBase64 === 'function') {
    const most = Math.ceil((envelope.length * 3) / 4);
    if (scratch.length < most) scratch = new Uint8Array(most);
    let decoded = null;
    try {
      const { read, written } = scratch.setFromBase64(envelope, BASE64URL);
      if (read === envelope.length) decoded = scratch.subarray(0, written);
    } catch {
      // Not base64url: the text path below reports it.
    }
    if (decoded) return key.openPassportBytes(decoded, pseudonym, institutionId);
  }
  return key.openPassport(envelope, pseudonym, institutionId);
}

/**
 * The search page's results: each item's passport opened with `keys` (items that do not open
 * are left out) and the blind index's false positives dropped — an item is kept when every
 * typed `[field, value]` normalizes (`normalize`: WASM `normalizeForIndex`) as the passport's
 * own field does. Returns `[{ item, passport }]` in the order of `items`.
 */
export function openResults(keys, items, institutionId, typed, normalize) {
  const wanted = typed.map(([field, value]) => [field, normalize(field, value)]);
  const out = [];
  for (const item of items) {
    let passport;
    try {
      passport = openPassport(keys, item, institutionId);
    } catch {
      continue;
    }
    if (wanted.every(([field, value]) => value === normalize(field, passport[field] ?? ''))) out.push({ item, passport });
  }
  return out;
}

/** Seals `passport` (an object) under `key` for the patient: `{ passport, blind_indexes }`. */
export function sealPassport(key, passport, pseudonym, institutionId) {
  return { passport: key.sealPassport(JSON.stringify(passport), pseudonym, institutionId), blind_indexes: blindIndexes(key, passport) };
}
