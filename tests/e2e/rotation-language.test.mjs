// A language switch during a key rotation: the Keys page is drawn again in the new language
// around the same run, which neither stops nor starts again. The first rotation switches to
// Russian while passports are re-encrypted and back to English while notes are re-sealed: the
// progress section (heading, bar, count, stage, Cancel) follows in each language, its heading
// names the stage, every passport and note is written once, by one run, and the page never says
// the rotation is unfinished. The second switches, keeps the warning against closing the tab,
// and is cancelled with the button of the page drawn after the switch; continued, switched again
// and left for another page, it stops as before. Last, the menu marks the page being opened
// while that page still loads.
//
// Writes are held in the test (page.route) so that each switch happens at a known point.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminInstitution, gateWrites, json, keysAndPatients } from './rotation-fixture.mjs';

const PASSPHRASE = 'switch passphrase 42';
const PATIENTS = [
  ['Карасёва', 'Фёкла', '1940-03-12'],
  ['Окунев', 'Савелий', '1948-07-21'],
  ['Плотвина', 'Ульяна', '1951-01-30'],
  ['Лещёв', 'Мирон', '1937-11-05'],
  ['Ершова', 'Прасковья', '1946-06-16'],
  ['Судаков', 'Елисей', '1953-09-09'],
  ['Налимова', 'Василиса', '1942-12-01'],
  ['Сомов', 'Фрол', '1949-04-27'],
  ['Щукарёва', 'Агафья', '1944-02-14'],
];
// Observation notes (patient index -> text), re-sealed after the passports.
const NOTES = [
  [0, 'Внучка Фёкла приезжает по субботам'],
  [2, 'Боль к утру, просит звонить соседке Ульяне'],
  [4, 'Ключ от квартиры у дочери Прасковьи'],
  [6, 'Плохо слышит на левое ухо, говорить громче'],
];
const NAMES = PATIENTS.flatMap(([s, f]) => [s, f]);
const NOTE_TEXTS = NOTES.map(([, text]) => text);

let suite; // the administrator's institution (rotation-fixture.mjs)
let admin;
let api; // the administrator, through the API (for checks)
let sA;
const ids = [];

before(async () => {
  suite = await adminInstitution('Lebedeva Inna Sergeevna');
  ({ admin, api, session: sA } = suite);
});

after(() => suite?.close(...NAMES, ...NOTE_TEXTS, PASSPHRASE));

const members = () => suite.members();

/** The key versions of every passport and every note, as the API gives them. */
async function versions() {
  const passports = [];
  const notes = [];
  for (const id of ids) passports.push((await json(await api.get(`/api/v1/patients/${id}`))).passport_key_version);
  for (const [index] of NOTES) {
    const list = await json(await api.get(`/api/v1/patients/${ids[index]}/observations`));
    notes.push(...list.map((o) => o.note_key_version));
  }
  return { passports, notes };
}

/** The requests of a run that look for what is left (a second run would ask again). */
function searches(mark) {
  const sent = sA.requests.slice(mark);
  return {
    passports: sent.filter((r) => r.method === 'POST' && r.url.endsWith('/patients/search') && r.body.includes('key_version_below')).length,
    notes: sent.filter((r) => r.method === 'GET' && r.url.includes('/observations/sealed-notes')).length,
  };
}

/** Records, from now on, whether the page ever offered to continue or said it was paused. */
function watchForRestart(page) {
  return page.evaluate(() => {
    window.rotationWatch = { continueOffered: false, paused: false, progressSections: 0 };
    const check = () => {
      if (document.getElementById('rotation-continue')) window.rotationWatch.continueOffered = true;
      if (/paused|приостановлено/.test(document.getElementById('main').innerText)) window.rotationWatch.paused = true;
      const sections = document.querySelectorAll('#rotation-progress').length;
      window.rotationWatch.progressSections = Math.max(window.rotationWatch.progressSections, sections);
    };
    new MutationObserver(check).observe(document.getElementById('main'), { childList: true, subtree: true, characterData: true });
  });
}

async function progress(page) {
  const bar = page.locator('#rotation-progress');
  return {
    value: Number(await bar.getAttribute('value')),
    max: Number(await bar.getAttribute('max')),
    label: (await page.locator('label[for="rotation-progress"]').innerText()).trim(),
    count: (await page.locator('#rotation-count').innerText()).trim(),
  };
}

async function switchTo(page, lang) {
  await page.click(`#topbar button[lang="${lang}"]`);
  await page.waitForFunction((code) => document.documentElement.lang === code, lang);
}

test('setup: a key pair, the institution key, patients with notes', () => sA.step('rotation-language-setup', async () => {
  const created = await keysAndPatients(sA, admin, { passphrase: PASSPHRASE, patients: PATIENTS, notes: NOTES });
  ids.push(...created);
  assert.equal(ids.length, PATIENTS.length);
  assert.deepEqual(await versions(), { passports: PATIENTS.map(() => 1), notes: NOTES.map(() => 1) });
}));

test('a language switch during a rotation: the run goes on in the new language, once, to the end', () => sA.step('rotation-language-switch', async () => {
  const { page } = sA;
  await sA.goto('/keys');
  const patientWrites = await gateWrites(page, '**/api/v1/patients/*', 3);
  const noteWrites = await gateWrites(page, '**/api/v1/observations/*/note', 0);
  const mark = sA.requests.length;
  await page.click('#rotate-key');
  await page.locator('dialog.dialog .btn-danger').click();
  const total = PATIENTS.length;
  await page.locator('#rotation-count', { hasText: `3 of ${total} passports` }).waitFor();
  assert.equal((await page.locator('#main .rotation-progress h2').innerText()).trim(), 'Re-encrypting passports');
  await watchForRestart(page);

  // To Russian while passports are re-encrypted: the same section, in Russian, on the same run.
  await switchTo(page, 'ru');
  await page.locator('#rotation-count', { hasText: `3 из ${total}` }).waitFor();
  assert.deepEqual(await progress(page), { value: 3, max: total, label: 'Перешифровано паспортов', count: `3 из ${total}` });
  assert.equal((await page.locator('#main .rotation-progress h2').innerText()).trim(), 'Перешифрование паспортов');
  await sA.waitForNotice(/Версия ключа 2 создана и передана владельцам/);
  assert.equal(await page.getByLabel('Перешифровано паспортов').count(), 1, 'the progress bar has its label');
  assert.equal(await page.locator('#rotation-cancel').innerText(), 'Отмена');
  assert.equal(await page.locator('#rotation-cancel').isEnabled(), true);
  await sA.screenshot('ru-keys-rotation-after-switch');

  // It keeps counting: through the passports, then on to the notes.
  patientWrites.release();
  await page.locator('label[for="rotation-progress"]', { hasText: 'Перешифровано заметок наблюдений' }).waitFor();
  await page.locator('#rotation-count', { hasText: `0 из ${NOTES.length} заметок` }).waitFor();
  // The heading says what is being done: the notes now, not the passports.
  assert.equal((await page.locator('#main .rotation-progress h2').innerText()).trim(), 'Перешифрование заметок наблюдений');

  // Back to English while the notes are re-sealed.
  await switchTo(page, 'en');
  await page.locator('#rotation-count', { hasText: `0 of ${NOTES.length} notes` }).waitFor();
  assert.deepEqual(await progress(page), { value: 0, max: NOTES.length, label: 'Observation notes re-encrypted', count: `0 of ${NOTES.length} notes` });
  assert.equal((await page.locator('#main .rotation-progress h2').innerText()).trim(), 'Re-encrypting observation notes');
  await sA.waitForNotice(/Key version 2 was created and given to the holders/);
  noteWrites.release();
  await sA.waitForNotice(new RegExp(`Key rotation finished: ${total} passports re-encrypted\\. ${NOTES.length} observation notes re-encrypted\\.`));
  assert.equal(await page.locator('#rotation-progress').count(), 0);
  await page.unroute('**/api/v1/patients/*');
  await page.unroute('**/api/v1/observations/*/note');

  // One run: one search for what is left of each kind, one write per passport and per note, and
  // the page never said the rotation was paused or unfinished.
  assert.deepEqual(searches(mark), { passports: 1, notes: 1 });
  assert.equal(patientWrites.paths.length, total);
  assert.equal(new Set(patientWrites.paths).size, total);
  assert.equal(noteWrites.paths.length, NOTES.length);
  assert.equal(new Set(noteWrites.paths).size, NOTES.length);
  assert.deepEqual(await page.evaluate(() => window.rotationWatch), { continueOffered: false, paused: false, progressSections: 1 });

  const m = await members();
  assert.equal(m.current_version, 2);
  assert.equal(m.passports_pending_rotation, 0);
  assert.equal(m.notes_pending_rotation, 0);
  assert.deepEqual(await versions(), { passports: PATIENTS.map(() => 2), notes: NOTES.map(() => 2) });
}));

test('after a language switch, a rotation still warns before the tab closes, cancels with its button, and stops when the page is left', () => sA.step('rotation-language-cancel', async () => {
  const { page } = sA;
  await sA.goto('/keys');
  await gateWrites(page, '**/api/v1/patients/*', 3);
  const mark = sA.requests.length;
  await page.click('#rotate-key');
  await page.locator('dialog.dialog .btn-danger').click();
  const total = PATIENTS.length;
  await page.locator('#rotation-count', { hasText: `3 of ${total} passports` }).waitFor();
  await switchTo(page, 'ru');
  await page.locator('#rotation-count', { hasText: `3 из ${total}` }).waitFor();

  // Closing the tab still asks first (the run still holds its beforeunload warning).
  const asked = new Promise((resolve) => {
    page.once('dialog', async (dialog) => {
      const type = dialog.type();
      await dialog.dismiss();
      resolve(type);
    });
  });
  await page.close({ runBeforeUnload: true });
  assert.equal(await Promise.race([asked, new Promise((resolve) => setTimeout(() => resolve('no dialog'), 5000))]), 'beforeunload');
  assert.equal(page.isClosed(), false, 'the tab stays open');
  await page.locator('#rotation-count', { hasText: `3 из ${total}` }).waitFor();

  // Cancel, with the button of the page drawn after the switch.
  await page.click('#rotation-cancel');
  await sA.waitForNotice(/Перешифрование приостановлено/);
  const left = total - 3;
  await sA.waitForNotice(new RegExp(`Смена ключа не завершена: ${left} паспортов`));
  assert.equal((await members()).passports_pending_rotation, left, 'the held writes were aborted');
  await page.waitForTimeout(500);
  assert.equal((await members()).passports_pending_rotation, left, 'nothing is written after the cancel');
  assert.deepEqual(searches(mark), { passports: 1, notes: 0 });
  await sA.screenshot('ru-keys-rotation-cancelled-after-switch');
  await page.unroute('**/api/v1/patients/*');

  // Continued, switched back to English, then left for another page: it stops there.
  await gateWrites(page, '**/api/v1/patients/*', 2);
  await page.click('#rotation-continue');
  await page.locator('#rotation-count', { hasText: `2 из ${left}` }).waitFor();
  await switchTo(page, 'en');
  await page.locator('#rotation-count', { hasText: `2 of ${left} passports` }).waitFor();
  await sA.goto('/home');
  const stopped = left - 2;
  assert.equal((await members()).passports_pending_rotation, stopped);
  await page.waitForTimeout(500);
  assert.equal((await members()).passports_pending_rotation, stopped, 'nothing is written after leaving the page');
  await page.unroute('**/api/v1/patients/*');
  await sA.goto('/keys');
  await sA.waitForNotice(new RegExp(`Key rotation unfinished: ${stopped} passports are still under older key versions`));
  await page.click('#rotation-continue');
  await sA.waitForNotice(new RegExp(`Key rotation finished: ${stopped} passports re-encrypted\\. ${NOTES.length} observation notes re-encrypted\\.`));

  const m = await members();
  assert.equal(m.current_version, 3);
  assert.equal(m.passports_pending_rotation, 0);
  assert.equal(m.notes_pending_rotation, 0);
  assert.deepEqual(await versions(), { passports: PATIENTS.map(() => 3), notes: NOTES.map(() => 3) });
}));

test('the menu marks the page being opened while it still loads', () => sA.step('menu-current-while-loading', async () => {
  const { page } = sA;
  await sA.goto('/home');
  let release;
  const released = new Promise((resolve) => {
    release = resolve;
  });
  const members = '**/api/v1/institutions/*/members';
  await page.route(members, async (route) => {
    await released;
    await route.continue();
  });
  await page.click('nav a[href="#/keys"]');
  await page.waitForFunction(() => document.getElementById('main').getAttribute('aria-busy') === 'true' && document.querySelector('#main .view[data-page="/keys"]'));
  assert.deepEqual(await page.locator('nav a[aria-current="page"]').allInnerTexts(), ['My keys'], 'the Keys entry is current at once');
  release();
  await sA.waitForRoute('/keys');
  assert.deepEqual(await page.locator('nav a[aria-current="page"]').allInnerTexts(), ['My keys']);
  await page.unroute(members);
}));
