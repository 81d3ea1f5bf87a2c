// What the key rotation tests share (rotation-language, rotation-stop; `json` also rotation): the
// API's answers, writes held on the wire, and an administrator's institution with its first key,
// patients and sealed notes.

import assert from 'node:assert/strict';
import { Session, apiAs, createInstitution, createUser, launchBrowser } from './harness.mjs';

/** The JSON of `response`, which must have `status`. */
export async function json(response, status = 200) {
  const text = await response.text();
  assert.equal(response.status(), status, `${response.url()}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/**
 * A browser and a new institution whose administrator (named `fullName`) is at hand through the
 * API and in a browser session: `{ admin, api, session, members, close }`. `members()` is the
 * institution's members as the API gives them; `close(...secrets)` checks that the session
 * raised no error and sent none of `secrets`, then closes everything (also what a failed start
 * had opened).
 */
export async function adminInstitution(fullName) {
  const opened = { browser: await launchBrowser() };
  const close = async (...secrets) => {
    try {
      opened.session?.assertClean();
      opened.session?.assertNothingSent(...secrets);
    } finally {
      await opened.session?.close();
      await opened.api?.dispose();
      await opened.browser.close();
    }
  };
  try {
    const root = await apiAs();
    const institution = await createInstitution(root);
    const admin = await createUser(root, { full_name: fullName, roles: ['admin'], institution_id: institution.id });
    await root.dispose();
    opened.api = await apiAs(admin.login, admin.password);
    opened.session = await Session.open(opened.browser);
    const { api, session } = opened;
    const members = async () => json(await api.get(`/api/v1/institutions/${institution.id}/members`));
    return { admin, api, session, members, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Lets the first `pass` PUTs to `pattern` through and holds the others until `release()` (never,
 * if it is not called: the write "is on the wire" when the run stops). `paths` lists every PUT
 * the page sent, held or not.
 */
export async function gateWrites(page, pattern, pass) {
  let release;
  const released = new Promise((resolve) => {
    release = resolve;
  });
  const gate = { paths: [], release: () => release() };
  await page.route(pattern, async (route) => {
    if (route.request().method() !== 'PUT') return route.continue();
    gate.paths.push(new URL(route.request().url()).pathname);
    if (gate.paths.length > pass) await released;
    // A write aborted in the page meanwhile is gone: nothing to let through.
    return route.continue().catch(() => {});
  });
  return gate;
}

/**
 * Signs `user` (an administrator of an institution without a key) in on session `s`, makes its key
 * pair under `passphrase` and the institution's first key, and registers `patients`
 * (`[surname, first name, date of birth]`) with `notes` (`[patient index, text]`), sealed in the
 * page as the New Patient page and the medical record's form do it. Resolves to the patients' ids.
 */
export async function keysAndPatients(s, user, { passphrase, patients, notes }) {
  const { page } = s;
  await s.signIn(user.login, user.password);
  await s.goto('/keys');
  await page.fill('#key-create-passphrase', passphrase);
  await page.fill('#key-create-passphrase_repeat', passphrase);
  await page.click('#main form[data-form-id="key-create"] button[type="submit"]');
  await page.locator('#my-fingerprint').waitFor();
  await page.click('#create-institution-key');
  await s.waitForNotice(/institution key was created/);
  return page.evaluate(async ({ patients, notes }) => {
    const { get, post } = await import('/js/api.js');
    const { loadCrypto } = await import('/js/crypto.js');
    const { openInstitutionKey } = await import('/js/keystore.js');
    const { NOTE_PURPOSE, sealPassport } = await import('/js/passports.js');
    const wasm = await loadCrypto();
    const me = await get('/me');
    const key = await openInstitutionKey(me);
    const diagnosis = (await get('/refs/diagnoses', { query: { active_only: true } }))[0];
    const out = [];
    for (const [surname, first_name, date_of_birth] of patients) {
      const pseudonym = wasm.newPseudonym();
      const passport = { surname, first_name, date_of_birth, sex: 'female' };
      const record = { sex: 'F', birth_year: Number(date_of_birth.slice(0, 4)), district_id: null, diagnosis_id: diagnosis.id, care_form_id: null, status: 'registered', registered_on: '2026-01-15', needs: [] };
      const p = await post('/patients', { pseudonym, record, ...sealPassport(key, passport, pseudonym, me.institution.id) });
      out.push(p.id);
    }
    for (const [index, text] of notes) {
      const p = await get(`/patients/${out[index]}`);
      const noteRef = `obs-${crypto.randomUUID()}`;
      await post(`/patients/${p.id}/observations`, { observed_on: '2026-02-01', pain_score: 4, note: { note_ref: noteRef, sealed: key.sealNote(text, NOTE_PURPOSE, p.pseudonym, me.institution.id, noteRef) } });
    }
    return out;
  }, { patients, notes });
}
