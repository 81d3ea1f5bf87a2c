// A key rotation stopped early, and stopped by a sign-out. Cancel pressed before the first
// progress report (while the search for what is left, or the institution keys, are still being
// fetched) pauses the run as a later Cancel does, with no error; an error the server really
// gives is still said as one. Signing out during a run stops it before the session ends and the
// keys are forgotten: the writes on the wire are aborted, nothing more is written, and the page
// raises no error (a key freed under a write still running would). Signed in again, the run is
// continued to the end. The session ending under the run (its writes answered 401) stops it the
// same way, and signed in again the Keys page offers to continue it.
//
// Requests are held in the test (page.route) so that each Cancel or sign-out happens at a known
// point.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { endSessionElsewhere } from './harness.mjs';
import { adminInstitution, gateWrites, json, keysAndPatients } from './rotation-fixture.mjs';

const PASSPHRASE = 'stopping passphrase 42';
const PATIENTS = [
  ['Ракитина', 'Евпраксия', '1941-05-14'],
  ['Осинин', 'Тихон', '1947-08-02'],
  ['Вязова', 'Пелагея', '1950-10-23'],
  ['Клёнов', 'Фадей', '1938-01-19'],
  ['Берёзкина', 'Олимпиада', '1945-03-07'],
  ['Тополев', 'Никанор', '1952-12-28'],
];
// Observation notes (patient index -> text), re-sealed after the passports.
const NOTES = [
  [1, 'Сосед Тихона приносит продукты по вторникам'],
  [4, 'Боль усиливается к вечеру, дочь Олимпиада рядом'],
];
const NAMES = PATIENTS.flatMap(([s, f]) => [s, f]);
const NOTE_TEXTS = NOTES.map(([, text]) => text);
const SEARCH = '**/api/v1/patients/search';
const ENVELOPES = '**/api/v1/me/envelopes';
const WRITES = '**/api/v1/patients/*';

let suite; // the administrator's institution (rotation-fixture.mjs)
let admin;
let api; // the administrator, through the API (for checks)
let sA;
const ids = [];

before(async () => {
  suite = await adminInstitution('Kedrova Anna Pavlovna');
  ({ admin, api, session: sA } = suite);
});

after(() => suite?.close(...NAMES, ...NOTE_TEXTS, PASSPHRASE));

const members = () => suite.members();

/** What the server counts as left to re-encrypt. */
async function pending() {
  const m = await members();
  return { version: m.current_version, passports: m.passports_pending_rotation, notes: m.notes_pending_rotation };
}

/**
 * Holds the first request to `pattern` with `method` (and, if given, a body that `matches`) until
 * `release()`; the others go through. `seen` counts the requests held; a request the page aborted
 * meanwhile is gone.
 */
async function holdFirst(page, pattern, method, matches = () => true) {
  let release;
  const released = new Promise((resolve) => {
    release = resolve;
  });
  const gate = { seen: 0, release: () => release() };
  await page.route(pattern, async (route) => {
    const request = route.request();
    if (request.method() !== method || !matches(request) || gate.seen > 0) return route.continue();
    gate.seen++;
    await released;
    return route.continue().catch(() => {});
  });
  return gate;
}

async function waitUntil(check, what, timeout = 10_000) {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The page says the run is paused, and no error. */
async function assertPaused(page) {
  await sA.waitForNotice(/Re-encryption paused/);
  await page.locator('#rotation-continue').waitFor();
  assert.deepEqual(await page.locator('#main .notice-error').allInnerTexts(), [], 'no error is shown');
  assert.equal(await page.locator('#rotation-progress').count(), 0);
}

test('setup: a key pair, the institution key, patients with notes', () => sA.step('rotation-stop-setup', async () => {
  const created = await keysAndPatients(sA, admin, { passphrase: PASSPHRASE, patients: PATIENTS, notes: NOTES });
  ids.push(...created);
  assert.equal(ids.length, PATIENTS.length);
  assert.deepEqual(await pending(), { version: 1, passports: 0, notes: 0 });
}));

test('Cancel before the first progress report pauses the run, as a later Cancel does', () => sA.step('rotation-stop-early-cancel', async () => {
  const { page } = sA;
  const total = PATIENTS.length;
  await sA.goto('/keys');

  // While the search for the passports left is on the wire.
  const search = await holdFirst(page, SEARCH, 'POST', (r) => (r.postData() ?? '').includes('key_version_below'));
  await page.click('#rotate-key');
  await page.locator('dialog.dialog .btn-danger').click();
  await waitUntil(() => search.seen > 0, 'the search for the passports left');
  assert.equal((await page.locator('#rotation-count').innerText()).trim(), 'Loading…', 'nothing was reported yet');
  await page.click('#rotation-cancel');
  await assertPaused(page);
  search.release();
  await page.unroute(SEARCH);
  assert.deepEqual(await pending(), { version: 2, passports: total, notes: NOTES.length });

  // Continued, and cancelled while the keys to re-encrypt with are still being fetched (my
  // envelopes: the run's very first request).
  const envelopes = await holdFirst(page, ENVELOPES, 'GET');
  const mark = sA.requests.length;
  await page.click('#rotation-continue');
  await waitUntil(() => envelopes.seen > 0, 'the envelopes');
  await page.click('#rotation-cancel');
  await assertPaused(page);
  envelopes.release();
  await page.unroute(ENVELOPES);
  assert.equal(sA.requests.slice(mark).filter((r) => r.url.endsWith('/patients/search')).length, 0, 'the run stopped before its search');
  assert.deepEqual(await pending(), { version: 2, passports: total, notes: NOTES.length });
  await sA.screenshot('en-keys-rotation-cancelled-early');
}));

test('an error the server gives before the first progress report is still said as an error', () => sA.step('rotation-stop-real-error', async () => {
  const { page } = sA;
  await page.route(SEARCH, (route) => {
    if (!(route.request().postData() ?? '').includes('key_version_below')) return route.continue();
    return route.fulfill({ status: 403, json: { error: { code: 'forbidden', message: 'forbidden' } } });
  });
  await page.click('#rotation-continue');
  const error = page.locator('#main .notice-error');
  await error.waitFor();
  assert.match(await error.innerText(), /Your account is not permitted to do this/);
  assert.equal(await page.locator('#main .notice', { hasText: /Re-encryption paused/ }).count(), 0, 'an error is not a pause');
  await page.unroute(SEARCH);
  assert.deepEqual(await pending(), { version: 2, passports: PATIENTS.length, notes: NOTES.length });
}));

test('signing out during a run stops it before the keys are forgotten: no error, nothing written after', () => sA.step('rotation-stop-sign-out', async () => {
  const { page } = sA;
  const total = PATIENTS.length;
  await sA.goto('/home');
  await sA.goto('/keys');
  // Two passports go through, the next writes (one per writer) stay on the wire.
  const writes = await gateWrites(page, WRITES, 2);
  await page.click('#rotation-continue');
  await page.locator('#rotation-count', { hasText: `2 of ${total} passports` }).waitFor();
  await waitUntil(() => writes.paths.length === 5, 'three writes on the wire');
  const before = await pending();
  assert.deepEqual(before, { version: 2, passports: total - 2, notes: NOTES.length });

  // The sign-out request is held a while, and the writes held until then are let go as it is
  // sent: a run still going meanwhile would write the rest.
  let loggedOut = false;
  await page.route('**/api/v1/auth/logout', async (route) => {
    loggedOut = true;
    writes.release();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await route.continue();
  });
  const mark = sA.requests.length;
  await page.click('#topbar button:has-text("Sign out")');
  await sA.waitForRoute('/login');
  assert.ok(loggedOut, 'the sign-out request was sent');
  await page.waitForTimeout(1000);

  const written = sA.requests
    .slice(mark)
    .filter((r) => r.method !== 'GET' && !r.url.endsWith('/auth/logout'))
    .map((r) => `${r.method} ${new URL(r.url).pathname}`);
  assert.deepEqual(written, [], 'nothing is written after signing out');
  assert.equal(writes.paths.length, 5, 'no passport write was sent after signing out');
  // The three writes already on the wire are aborted by the page, but whether an aborted request
  // still reaches the server is the browser's race with the held route being let go (as on a
  // real network, where a request sent is a request the server may act on): at most those three
  // land, nothing else.
  const after = await pending();
  assert.ok(after.passports >= before.passports - 3 && after.passports <= before.passports, `at most the writes on the wire: ${JSON.stringify({ before, after })}`);
  assert.deepEqual({ ...after, passports: before.passports }, before, 'the notes and the version are untouched');
  assert.deepEqual(sA.pageErrors, [], 'no uncaught exception');
  assert.deepEqual(sA.consoleErrors, [], 'no console error');
  assert.equal(await page.locator('#main .notice-error').count(), 0, 'no error is shown');
  assert.equal(await page.evaluate(async (id) => (await import('/js/keystore.js')).unlockedPair(id) === null, admin.id), true, 'the key is forgotten');
  await page.unroute('**/api/v1/auth/logout');
  await page.unroute(WRITES);

  // Signed in again and unlocked, the run is continued to the end.
  await sA.signIn(admin.login, admin.password);
  await sA.goto('/keys');
  await page.fill('#key-unlock-passphrase', PASSPHRASE);
  await page.click('#main form[data-form-id="key-unlock"] button[type="submit"]');
  const left = after.passports;
  await sA.waitForNotice(new RegExp(`Key rotation unfinished: ${left} passports? (is|are) still under (an )?older key versions?`));
  await page.click('#rotation-continue');
  await sA.waitForNotice(new RegExp(`Key rotation finished: ${left} passports? re-encrypted\\. ${NOTES.length} observation notes re-encrypted\\.`));
  assert.deepEqual(await pending(), { version: 2, passports: 0, notes: 0 });
}));

test('the session ending during a run stops it: no error, nothing written after; signed in again, the page offers to continue', () => sA.step('rotation-stop-session-ended', async () => {
  const { page } = sA;
  const total = PATIENTS.length;
  await sA.goto('/home');
  await sA.goto('/keys');
  // A new version: two passports go through, the next writes (one per writer) stay on the wire.
  const writes = await gateWrites(page, WRITES, 2);
  await page.click('#rotate-key');
  await page.locator('dialog.dialog .btn-danger').click();
  await page.locator('#rotation-count', { hasText: `2 of ${total} passports` }).waitFor();
  await waitUntil(() => writes.paths.length === 5, 'three writes on the wire');
  const before = await pending();
  assert.deepEqual(before, { version: 3, passports: total - 2, notes: NOTES.length });

  // The session ends on the server (signed out in another window); the writes on the wire are
  // let go then, and each is answered 401.
  await endSessionElsewhere(sA);
  const mark = sA.requests.length;
  writes.release();
  await sA.waitForRoute('/login');
  assert.match(await page.locator('#main .notice').innerText(), /Your session has ended/);
  await page.waitForTimeout(1000);
  const written = sA.requests
    .slice(mark)
    .filter((r) => r.method !== 'GET')
    .map((r) => `${r.method} ${new URL(r.url).pathname}`);
  assert.deepEqual(written, [], 'nothing is written (nor searched) after the session ended');
  assert.equal(writes.paths.length, 5, 'no passport write was sent after the 401');
  assert.deepEqual(await pending(), before, 'the writes refused wrote nothing');
  assert.deepEqual(sA.pageErrors, [], 'no uncaught exception (nor unhandled rejection)');
  assert.deepEqual(sA.consoleErrors, [], 'no console error');
  assert.equal(await page.locator('#main .notice-error').count(), 0, 'no error is shown');
  await page.unroute(WRITES);

  // Signed in again (the keys stayed unlocked in this tab): the Keys page, with the run to continue.
  await sA.signIn(admin.login, admin.password, { expectRoute: '/keys' });
  const left = before.passports;
  await sA.waitForNotice(new RegExp(`Key rotation unfinished: ${left} passports? (is|are) still under (an )?older key versions?`));
  await page.click('#rotation-continue');
  await sA.waitForNotice(new RegExp(`Key rotation finished: ${left} passports? re-encrypted\\. ${NOTES.length} observation notes re-encrypted\\.`));
  assert.deepEqual(await pending(), { version: 3, passports: 0, notes: 0 });
}));
