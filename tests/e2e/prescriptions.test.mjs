// Prescriptions and reports through the browser: two clinicians of one institution set up their
// keys, the second registers a patient with a Cyrillic name and writes her a prescription, finds
// it in the History of Prescriptions (the patient named only after the browser opened her
// passport), edits it (and meets a stale edit), completes and cancels others, and downloads the
// signed prescription report; a ministry analyst downloads a summary report across two
// institutions. Every downloaded report is checked against its Ed25519 signature with the
// server's public key. No name ever leaves the browser in clear.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createPublicKey, verify } from 'node:crypto';
import { Session, apiAs, createInstitution, createUser, launchBrowser } from './harness.mjs';

const PASSPHRASE = 'prescription key passphrase 7';
const PATIENT = { surname: 'Ёлкина-Сидорова', first_name: 'Агриппина', patronymic: 'Тимофеевна', dob: '1941-02-17', snils: '112-233-445 95' };
const FULL_NAME = `${PATIENT.surname} ${PATIENT.first_name} ${PATIENT.patronymic}`;
const NEEDLES = ['Ёлкина', 'Сидорова', 'Агриппина', 'Тимофеевна', 'елкина', PATIENT.snils, PATIENT.dob, PASSPHRASE];

let browser;
let institution;
let other;
let c1;
let c2;
let analyst;
let morphine;
let paracetamol;
let s1;
let s2;
let patientId;
let rxId;
let rxNumber;

before(async () => {
  browser = await launchBrowser();
  const api = await apiAs();
  institution = await createInstitution(api, { name: 'Medvezhyegorsk Central District Hospital' });
  other = await createInstitution(api, { name: 'Olonets Hospice' });
  c1 = await createUser(api, { full_name: 'Lebedeva Olga Petrovna', roles: ['user'], institution_id: institution.id });
  c2 = await createUser(api, { full_name: 'Sokolov Ilya Markovich', roles: ['user'], institution_id: institution.id });
  analyst = await createUser(api, { full_name: 'Zaitseva Nina', roles: ['ministry'], institution_id: null });
  const medicaments = await (await api.get('/api/v1/refs/medicaments?active_only=true')).json();
  morphine = medicaments.find((m) => m.code === 'MOR-TAB-10');
  paracetamol = medicaments.find((m) => !m.controlled);
  assert.ok(morphine?.controlled && paracetamol, 'the seeded medicaments');
  await api.dispose();
  s1 = await Session.open(browser);
  s2 = await Session.open(browser);
});

after(async () => {
  try {
    for (const s of [s1, s2]) {
      s?.assertNothingSent(...NEEDLES);
      s?.assertClean();
    }
  } finally {
    await s1?.close();
    await s2?.close();
    await browser?.close();
  }
});

/** The server's report-signing public key (public, no session needed). */
async function reportKey() {
  const api = await apiAs();
  const key = await (await api.get('/api/v1/reports/public-key')).json();
  await api.dispose();
  return createPublicKey(key.pem);
}

/** Clicks `selector` and returns the download it starts: `{name, bytes}`. */
async function downloadBy(s, selector) {
  const [download] = await Promise.all([s.page.waitForEvent('download'), s.page.click(selector)]);
  const path = await download.path();
  return { name: download.suggestedFilename(), bytes: await readFile(path) };
}

/** Asserts the report on the page: the file verifies against the signature shown and its .sig. */
async function assertSigned(s, file) {
  const signature = (await s.page.locator('#report-signature').innerText()).trim();
  assert.match(signature, /^[A-Za-z0-9+/]{86}==$/, 'an Ed25519 signature, base64');
  const key = await reportKey();
  assert.ok(verify(null, file.bytes, key, Buffer.from(signature, 'base64')), 'the signature shown verifies the downloaded file');
  const tampered = Buffer.from(file.bytes);
  tampered[tampered.length - 2] ^= 1;
  assert.ok(!verify(null, tampered, key, Buffer.from(signature, 'base64')), 'and would not verify another file');
  const sig = await downloadBy(s, '#report-sig-download');
  const sigText = sig.bytes.toString('utf8');
  assert.ok(sigText.includes(signature), `the .sig file carries the signature: ${sigText}`);
  const pem = await downloadBy(s, '#report-key-download');
  assert.match(pem.bytes.toString('utf8'), /^-----BEGIN PUBLIC KEY-----/);
}

async function createKey(s) {
  await s.goto('/keys');
  await s.page.fill('#key-create-passphrase', PASSPHRASE);
  await s.page.fill('#key-create-passphrase_repeat', PASSPHRASE);
  await s.page.click('#main form[data-form-id="key-create"] button[type="submit"]');
  await s.page.locator('#my-fingerprint').waitFor();
}

test('setup: keys granted, and the patient registered by the second clinician', () => s2.step('rx-setup', async () => {
  await s1.signIn(c1.login, c1.password);
  await createKey(s1);
  await s1.page.click('#create-institution-key');
  await s1.waitForNotice(/institution key was created/);
  await s2.signIn(c2.login, c2.password);
  await createKey(s2);
  await s1.goto('/home');
  await s1.goto('/keys');
  await s1.page.click(`#main button[data-login="${c2.login}"]`);
  await s1.page.locator('dialog.dialog .btn-primary').click();
  await s1.waitForNotice(/now holds the institution key/);

  const { page } = s2;
  await s2.goto('/patients/new');
  await page.fill('#patient-new-surname', PATIENT.surname);
  await page.fill('#patient-new-first_name', PATIENT.first_name);
  await page.fill('#patient-new-patronymic', PATIENT.patronymic);
  await page.fill('#patient-new-date_of_birth', PATIENT.dob);
  await page.selectOption('#patient-new-sex', 'F');
  await page.fill('#patient-new-snils', PATIENT.snils);
  await page.selectOption('#patient-new-diagnosis_id', { index: 1 });
  await page.click('#main form[data-form-id="patient-new"] button[type="submit"]');
  await s2.waitForRoute(/^\/patients\/\d+$/);
  assert.equal(await s2.heading(), FULL_NAME);
  patientId = (await page.evaluate(() => window.location.hash)).split('/').pop();
}));

test('new prescription: from the patient page, errors on their fields, the name shown but never sent', () => s2.step('rx-new', async () => {
  const { page } = s2;
  // The menu offers the prescription pages and reports to a clinician.
  const nav = await page.locator('#nav').innerText();
  for (const entry of ['New prescription', 'History of prescriptions', 'Prescription report', 'Summary report']) assert.ok(nav.includes(entry), `menu: ${entry}`);

  await s2.goto(`/patients/${patientId}`);
  const section = page.locator('#main section.patient-prescriptions');
  assert.match(await section.innerText(), /No prescription matches/);
  await page.click('#patient-new-prescription');
  await s2.waitForRoute(`/patients/${patientId}/prescriptions/new`);
  assert.equal(await s2.heading(), 'New prescription');
  assert.match(await page.locator('#main dl.facts').innerText(), new RegExp(FULL_NAME), 'the patient named after opening her passport here');
  const form = `prescription-new-${patientId}`;
  const inactive = await page.locator(`#${form}-medicament_id option`).allInnerTexts();
  assert.ok(inactive.length > 10 && !inactive.some((o) => o.includes('deactivated')), 'active medicaments only');

  // Checked in the browser: required fields, amounts, dates in order.
  await page.fill(`#${form}-frequency`, '');
  await page.fill(`#${form}-dose`, '0');
  await page.fill(`#${form}-start_on`, '2020-01-01');
  await page.click(`#main form[data-form-id="${form}"] button[type="submit"]`);
  assert.match(await page.locator(`#${form}-medicament_id-error`).innerText(), /Fill in this field/);
  assert.match(await page.locator(`#${form}-dose-error`).innerText(), /greater than 0/);
  assert.match(await page.locator(`#${form}-start_on-error`).innerText(), /on or after the prescription date/);
  assert.equal(await page.getAttribute(`#${form}-dose`, 'aria-invalid'), 'true');
  assert.match(await page.getAttribute(`#${form}-dose`, 'aria-describedby'), new RegExp(`${form}-dose-error`));
  await s2.screenshot('en-prescriptions-new-invalid');

  // Refused by the server: its error lands on the field it concerns.
  await page.evaluate((id) => {
    const select = document.getElementById(id);
    select.append(new Option('gone', '987654321'));
    select.value = '987654321';
  }, `${form}-medicament_id`);
  await page.fill(`#${form}-dose`, '10');
  await page.fill(`#${form}-frequency`, 'every 4 hours');
  await page.fill(`#${form}-quantity`, '60');
  await page.fill(`#${form}-start_on`, await page.inputValue(`#${form}-prescribed_on`));
  await page.click(`#main form[data-form-id="${form}"] button[type="submit"]`);
  await page.locator(`#${form}-medicament_id-error`, { hasText: /not in the reference book/ }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), `${form}-medicament_id`, 'focus on the field to fix');

  await page.selectOption(`#${form}-medicament_id`, String(morphine.id));
  await page.fill(`#${form}-dose`, '10,5');
  await page.selectOption(`#${form}-route`, 'oral');
  await s2.screenshot('en-prescriptions-new');
  await page.click(`#main form[data-form-id="${form}"] button[type="submit"]`);
  await s2.waitForRoute(/^\/prescriptions\/\d+$/);
  rxId = (await page.evaluate(() => window.location.hash)).split('/').pop();
  await s2.waitForNotice(/Prescription .+ is written/);
  rxNumber = (await s2.heading()).replace(/^Prescription /, '').replace(/\s*Active$/, '');
  assert.ok(rxNumber.length > 0);
  const details = await page.locator('#main dl.facts').innerText();
  assert.match(details, new RegExp(FULL_NAME));
  assert.match(details, /10\.5 mg, Oral, every 4 hours/);
  assert.match(details, /60 tablet/);
  const sent = s2.requests.filter((r) => r.method === 'POST' && r.url.endsWith('/api/v1/prescriptions'));
  assert.equal(sent.length, 2, 'the refused and the accepted prescription');
  const body = JSON.parse(sent[1].body);
  assert.deepEqual(Object.keys(body).sort(), ['dose', 'dose_unit', 'end_on', 'frequency', 'medicament_id', 'patient_id', 'prescribed_on', 'quantity', 'route', 'start_on']);
  assert.equal(body.dose, 10.5);
  await s2.screenshot('en-prescriptions-detail');
  s2.assertNothingSent(...NEEDLES);
}));

test('history of prescriptions: search, open, edit, a stale edit, complete and cancel with confirmation', () => s2.step('rx-history', async () => {
  const { page } = s2;
  await s2.goto('/prescriptions');
  await page.selectOption('#prescription-search-controlled', 'yes');
  await page.selectOption('#prescription-search-status', 'active');
  await page.click('#main form[data-form-id="prescription-search"] button[type="submit"]');
  await s2.waitForRoute('/prescriptions?controlled=yes&status=active');
  const rows = page.locator('#main .search-results[data-done="true"] tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), new RegExp(`${rxNumber}[\\s\\S]*${FULL_NAME}[\\s\\S]*controlled[\\s\\S]*Sokolov Ilya Markovich[\\s\\S]*Active`));
  await s2.screenshot('en-prescriptions-history');
  const search = s2.requests.filter((r) => r.url.endsWith('/api/v1/prescriptions/search')).pop();
  assert.deepEqual(JSON.parse(search.body), { medicament_id: null, controlled: true, from: null, to: null, prescriber_id: null, status: 'active', patient_id: null, after: null, limit: 25 });

  await page.selectOption('#prescription-search-controlled', 'no');
  await page.click('#main form[data-form-id="prescription-search"] button[type="submit"]');
  await s2.waitForRoute('/prescriptions?controlled=no&status=active');
  await page.locator('#main .search-results[data-done="true"] td.empty').waitFor();

  // Edit it.
  await s2.goto('/prescriptions?controlled=yes');
  await page.locator('#main .search-results[data-done="true"] tbody tr a', { hasText: rxNumber }).click();
  await s2.waitForRoute(`/prescriptions/${rxId}`);
  const form = `prescription-${rxId}`;
  await page.fill(`#${form}-dose`, '15');
  await page.fill(`#${form}-quantity`, '90');
  await page.click(`#main form[data-form-id="${form}"] button[type="submit"]`);
  await s2.waitForNotice(/Changes saved/);
  assert.match(await page.locator('#main dl.facts').innerText(), /15 mg, Oral[\s\S]*90 tablet[\s\S]*Version\s+2/);
  const versions = page.locator('#main table.history tbody tr');
  assert.equal(await versions.count(), 2);
  assert.match(await versions.first().innerText(), /^2\s.*Sokolov Ilya Markovich\s+Changed/);

  // Someone else saved meanwhile: refused with a clear message and a reload.
  await page.evaluate(async (id) => {
    const { get, put } = await import('/js/api.js');
    const p = await get(`/prescriptions/${id}`);
    const { prescribed_on, medicament_id, dose, dose_unit, route, frequency, quantity, start_on, end_on } = p;
    await put(`/prescriptions/${id}`, { version: p.version, prescribed_on, medicament_id, dose, dose_unit, route, frequency: 'every 6 hours', quantity, start_on, end_on });
  }, rxId);
  await page.fill(`#${form}-quantity`, '120');
  await page.click(`#main form[data-form-id="${form}"] button[type="submit"]`);
  await s2.waitForNotice(/changed this prescription meanwhile/);
  await s2.screenshot('en-prescriptions-stale');
  await page.click('#prescription-reload');
  await s2.waitForRoute(`/prescriptions/${rxId}`);
  assert.equal(await versions.count(), 3);
  assert.match(await page.locator('#main dl.facts').innerText(), /every 6 hours[\s\S]*90 tablet/, 'the other edit, not mine');

  // Two more prescriptions (non-controlled): one completed, one cancelled, each after a confirmation.
  const ids = await page.evaluate(async ({ patient, medicament }) => {
    const { post } = await import('/js/api.js');
    const d = new Date();
    const today = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const body = { patient_id: Number(patient), prescribed_on: today, medicament_id: medicament, dose: 500, dose_unit: 'mg', route: 'oral', frequency: 'three times a day', quantity: 30, start_on: today };
    return [(await post('/prescriptions', body)).id, (await post('/prescriptions', body)).id];
  }, { patient: patientId, medicament: paracetamol.id });

  await s2.goto(`/prescriptions/${ids[0]}`);
  await page.click('#prescription-complete');
  const dialog = page.locator('dialog.dialog');
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /completed/);
  await dialog.locator('button', { hasText: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await page.locator('#main h1 .badge').innerText(), 'Active', 'nothing changed without confirmation');
  await page.click('#prescription-complete');
  await dialog.locator('.btn-primary').click();
  await s2.waitForNotice(/marked completed/);
  assert.equal(await page.locator('#main h1 .badge').innerText(), 'Completed');
  assert.equal(await page.locator(`#main form[data-form-id="prescription-${ids[0]}"]`).count(), 0, 'no edit form on a completed prescription');

  await s2.goto(`/prescriptions/${ids[1]}`);
  const cancelForm = `prescription-cancel-${ids[1]}`;
  await page.click(`#main form[data-form-id="${cancelForm}"] button[type="submit"]`);
  assert.match(await page.locator(`#${cancelForm}-reason-error`).innerText(), /Fill in this field/);
  await page.fill(`#${cancelForm}-reason`, 'Written in error');
  await page.click(`#main form[data-form-id="${cancelForm}"] button[type="submit"]`);
  await dialog.waitFor();
  await s2.screenshot('en-prescriptions-cancel-confirm', { fullPage: false });
  await dialog.locator('.btn-danger').click();
  await s2.waitForNotice(/is cancelled/);
  assert.match(await page.locator('#main dl.facts').innerText(), /Reason for cancelling\s+Written in error/);
  assert.match(await page.locator('#main table.history tbody tr').first().innerText(), /Cancelled/);

  // The patient's page lists all three; its link leads to her filtered history.
  await s2.goto(`/patients/${patientId}`);
  const listed = page.locator('#main section.patient-prescriptions tbody tr');
  assert.equal(await listed.count(), 3);
  assert.match(await listed.first().innerText(), new RegExp(rxNumber));
  await page.click('#patient-prescription-history');
  await s2.waitForRoute(`/prescriptions?patient=${patientId}`);
  assert.equal(await page.locator('#main .search-results[data-done="true"] tbody tr').count(), 3);
  assert.match(await page.locator('#main .notice', { hasText: 'one patient' }).innerText(), new RegExp(FULL_NAME));

  // Without the key in memory (a new tab), patients are shown by the short pseudonym.
  const s3 = await Session.open(browser);
  try {
    await s3.signIn(c2.login, c2.password);
    await s3.goto('/prescriptions?controlled=yes');
    const cell = await s3.page.locator('#main .search-results[data-done="true"] tbody tr').first().innerText();
    assert.doesNotMatch(cell, /Ёлкина/);
    assert.match(cell, /[0-9A-Z]{8}…/, 'the short pseudonym');
    s3.assertClean();
  } finally {
    await s3.close();
  }
  s2.assertNothingSent(...NEEDLES);
}));

test('reports: the clinician downloads the signed prescription report', () => s2.step('rx-report', async () => {
  const { page } = s2;
  await s2.goto('/prescriptions?controlled=yes');
  await page.click('#prescription-report-link');
  await s2.waitForRoute(/^\/reports\/prescriptions\?/);
  assert.equal(await page.inputValue('#report-prescriptions-controlled'), 'yes', 'the filters of the history come along');
  const file = await (async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#main form[data-form-id="report-prescriptions"] button[type="submit"]')]);
    return { name: download.suggestedFilename(), bytes: await readFile(await download.path()) };
  })();
  assert.match(file.name, /^prescriptions-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.pdf$/);
  assert.equal(file.bytes.subarray(0, 5).toString('latin1'), '%PDF-', 'a PDF');
  await assertSigned(s2, file);
  const request = s2.requests.filter((r) => r.url.includes('/api/v1/reports/prescriptions.pdf')).pop();
  assert.match(request.url, /controlled=true/);
  await s2.screenshot('en-reports-prescriptions');
  // The report is the institution's: one without the filter is another, larger file.
  await page.selectOption('#report-prescriptions-controlled', '');
  const all = await downloadBy(s2, '#main form[data-form-id="report-prescriptions"] button[type="submit"]');
  assert.equal(all.bytes.subarray(0, 5).toString('latin1'), '%PDF-');
  assert.notEqual(all.bytes.length, file.bytes.length);
  s2.assertNothingSent(...NEEDLES);
}));

test('the same pages in Russian', () => s2.step('rx-russian', async () => {
  const { page } = s2;
  await s2.goto(`/prescriptions/${rxId}`);
  await page.click('#topbar button[lang="ru"]');
  await page.locator('#main h2', { hasText: 'Версии назначения' }).waitFor();
  const shots = [
    [`/prescriptions/${rxId}`, 'ru-prescriptions-detail'],
    ['/prescriptions?controlled=yes', 'ru-prescriptions-history'],
    [`/patients/${patientId}/prescriptions/new`, 'ru-prescriptions-new'],
    ['/reports/prescriptions', 'ru-reports-prescriptions'],
    ['/reports/summary', 'ru-reports-summary-clinician'],
  ];
  for (const [route, name] of shots) {
    await s2.goto(route);
    const text = await page.locator('#main').innerText();
    assert.doesNotMatch(text, /\b(prescriptions|reports|errors)\.[a-z_]+/, `no message key on ${route}`);
    assert.doesNotMatch(text, /\b(null|undefined|NaN)\b/, `no stray value on ${route}`);
    await s2.screenshot(name);
  }
  // The book's unit and the route code read in Russian too.
  await s2.goto(`/prescriptions/${rxId}`);
  const facts = await page.locator('#main dl.facts').innerText();
  assert.match(facts, /\d+ таб\./);
  assert.match(facts, /Внутрь/);
  assert.doesNotMatch(facts, /tablet|oral/i);
  await s2.goto('/reports/prescriptions');
  const file = await downloadBy(s2, '#main form[data-form-id="report-prescriptions"] button[type="submit"]');
  assert.equal(file.bytes.subarray(0, 5).toString('latin1'), '%PDF-');
  assert.match(await page.locator('#main .report-result h2').innerText(), /Отчёт готов/);
  await s2.screenshot('ru-reports-prescriptions-ready');
  await page.click('#topbar button[lang="en"]');
  await page.locator('#main h1', { hasText: 'Prescription report' }).waitFor();
}));

test('a ministry analyst downloads a summary report across two institutions', async () => {
  const s = await Session.open(browser);
  try {
    await s.step('rx-ministry', async () => {
      const { page } = s;
      await s.signIn(analyst.login, analyst.password);
      const nav = await page.locator('#nav').innerText();
      assert.match(nav, /Summary report/);
      assert.doesNotMatch(nav, /prescription/i, 'no prescription pages for the ministry');
      await s.goto('/prescriptions');
      assert.equal(await s.heading(), 'Not permitted');

      await s.goto('/reports/summary');
      assert.doesNotMatch(await page.locator('#main').innerText(), /\b(null|undefined)\b/);
      await page.check(`#main label:text-is("${institution.name}")`);
      await page.check(`#main label:text-is("${other.name}")`);
      await s.screenshot('en-reports-summary');
      const pdf = await downloadBy(s, '#main form[data-form-id="report-summary"] button[type="submit"]');
      assert.equal(pdf.bytes.subarray(0, 5).toString('latin1'), '%PDF-');
      assert.match(pdf.name, /^summary-.*\.pdf$/);
      await assertSigned(s, pdf);
      await s.screenshot('en-reports-summary-ready');

      await page.selectOption('#report-summary-format', 'json');
      const json = await downloadBy(s, '#main form[data-form-id="report-summary"] button[type="submit"]');
      await assertSigned(s, json);
      const doc = JSON.parse(json.bytes.toString('utf8'));
      assert.deepEqual([...doc.meta.institutions].sort(), [institution.name, other.name].sort(), 'exactly the chosen institutions');
      const request = s.requests.filter((r) => r.url.includes('/api/v1/reports/summary.json')).pop();
      assert.match(decodeURIComponent(request.url), new RegExp(`institutions=(${institution.id},${other.id}|${other.id},${institution.id})`));

      await page.selectOption('#report-summary-format', 'fhir');
      const fhir = await downloadBy(s, '#main form[data-form-id="report-summary"] button[type="submit"]');
      assert.equal(JSON.parse(fhir.bytes.toString('utf8')).resourceType, 'MeasureReport');

      await page.click('#topbar button[lang="ru"]');
      await page.locator('#main h1', { hasText: 'Сводный отчёт' }).waitFor();
      await s.screenshot('ru-reports-summary');
      await page.click('#topbar button[lang="en"]');
      s.assertClean();
    });
  } finally {
    await s.close();
  }
});
