// Administration through the browser: reference books (an institution, 409 on deleting an
// entry in use, deactivation), users (two clinicians and a ministry analyst, validation, edit,
// password reset, de-registration and re-registration), roles, and the audit log.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, PASSWORD, Session, apiAs, createDistrict, createInstitution, createUser, launchBrowser, unique, withSession } from './harness.mjs';

let browser;
let session;
let api;
const institution = { code: unique('city-hospital-'), name: 'Petrozavodsk City Hospital No. 2', nameRu: 'Городская больница № 2 г. Петрозаводска' };
const clinicians = [
  { login: unique('ivanova'), fullName: 'Ivanova Maria Petrovna' },
  { login: unique('petrov'), fullName: 'Petrov Sergei Ivanovich' },
];
const analyst = { login: unique('minzdrav'), fullName: 'Smirnova Olga (Ministry)' };
let district;

before(async () => {
  browser = await launchBrowser();
  session = await Session.open(browser);
  api = await apiAs();
  district = await createDistrict(api, { name: `Prionezhsky district ${unique('')}` });
  await session.signIn(ADMIN.login, ADMIN.password);
});

after(async () => {
  try {
    session?.assertClean();
  } finally {
    await session?.close();
    await api?.dispose();
    await browser?.close();
  }
});

/** The status notices (role=status) of the page, as text. */
async function notices(page) {
  return (await page.locator('#main .notice').allInnerTexts()).join('\n');
}

const step = (name, fn) => session.step(name, fn);

async function confirm(page) {
  const dialog = page.locator('dialog.dialog');
  await dialog.waitFor();
  await dialog.locator('.btn-danger, .btn-primary').click();
  await dialog.waitFor({ state: 'detached' });
}

test('reference books: add an institution, find it by search', () => step('reference-books-add-an-institution-find', async () => {
  const { page } = session;
  await session.goto('/admin/refs/institutions');
  await page.click('#main a:has-text("Add an entry")');
  await session.waitForRoute('/admin/refs/institutions/new');
  await page.fill('#ref-new-institutions-code', institution.code);
  await page.fill('#ref-new-institutions-name', institution.name);
  await page.fill('#ref-new-institutions-name_ru', institution.nameRu);
  await page.selectOption('#ref-new-institutions-district_id', { label: district.name });
  await session.screenshot('en-admin-refs-institutions-new-filled');
  await page.click('#main button[type="submit"]');
  await session.waitForRoute('/admin/refs/institutions');
  assert.match(await notices(page), new RegExp(`Entry ${institution.code} added`));

  await page.fill('#refs-filter-institutions-q', institution.code);
  const rows = page.locator('#main table tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), /Petrozavodsk City Hospital No\. 2/);
  assert.match(await rows.first().innerText(), /Городская больница № 2/);
  assert.match(await rows.first().innerText(), new RegExp(district.name));
  assert.match(await page.locator('#main .result-count').innerText(), /Showing 1 of \d+ entr/);
  await session.screenshot('en-admin-refs-institutions');
}));

test('reference books: an entry in use cannot be deleted (409) but can be deactivated', () => step('reference-books-an-entry-in-use-cannot-b', async () => {
  const { page } = session;
  await session.goto(`/admin/refs/districts/${district.id}`);
  await page.click('#main button:has-text("Delete")');
  await confirm(page);
  const alert = page.locator('#main [role="alert"]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /This entry is in use, so it cannot be deleted\. Deactivate it instead/);
  await session.screenshot('en-admin-refs-in-use');

  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Deactivate', 'focus moves to the way out');
  await page.keyboard.press('Enter');
  await session.waitForNotice(/deactivated: forms no longer offer it/);
  assert.equal(await page.locator('#main h1 .badge').innerText(), 'Deactivated');

  await page.click('#main button:has-text("Activate")');
  await session.waitForNotice(/activated\./);
  assert.equal(await page.locator('#main h1 .badge').innerText(), 'Active');
}));

test('reference books: invalid codes are refused with the field marked', () => step('reference-books-invalid-codes-are-refuse', async () => {
  const { page } = session;
  await session.goto('/admin/refs/diagnoses/new');
  await page.fill('#ref-new-diagnoses-code', 'C5');
  await page.fill('#ref-new-diagnoses-name', 'Something');
  await page.fill('#ref-new-diagnoses-block', 'C50-C50');
  await page.click('#main button[type="submit"]');
  assert.equal(await page.getAttribute('#ref-new-diagnoses-code', 'aria-invalid'), 'true');
  assert.match(await page.locator('#ref-new-diagnoses-code-error').innerText(), /An ICD-10 code/);

  // A code that exists already: the server's 409 lands on the code field.
  await page.fill('#ref-new-diagnoses-code', 'C50');
  await page.click('#main button[type="submit"]');
  await page.locator('#ref-new-diagnoses-code-error:not([hidden])').waitFor();
  assert.match(await page.locator('#ref-new-diagnoses-code-error').innerText(), /already exists in this reference book/);
}));

async function registerUser({ login, fullName }, { institutionName, roles }) {
  const { page } = session;
  await session.goto('/admin/users');
  await page.click('#main a:has-text("Register a user")');
  await session.waitForRoute('/admin/users/new');
  await page.fill('#user-new-login', login);
  await page.fill('#user-new-full_name', fullName);
  await page.selectOption('#user-new-institution_id', { label: institutionName });
  for (const role of ['Administrator', 'Clinician', 'Ministry analyst']) {
    const box = page.getByRole('checkbox', { name: role, exact: true });
    if ((await box.isChecked()) !== roles.includes(role)) await box.click();
  }
  await page.fill('#user-new-password', PASSWORD);
  await page.fill('#user-new-password_repeat', PASSWORD);
  await page.click('#main button[type="submit"]');
  await session.waitForRoute('/admin/users');
  assert.match(await notices(page), new RegExp(`User ${login} registered`));
}

test('users: the registration form checks its fields before sending', () => step('users-the-registration-form-checks-its-f', async () => {
  const { page } = session;
  await session.goto('/admin/users/new');
  await page.getByRole('checkbox', { name: 'Clinician', exact: true }).uncheck();
  await page.fill('#user-new-login', 'a b');
  await page.fill('#user-new-password', 'short');
  await page.fill('#user-new-password_repeat', 'other');
  await page.click('#main button[type="submit"]');
  const summary = page.locator('#main form [role="alert"]');
  assert.match(await summary.innerText(), /There are problems with 6 fields/);
  for (const [id, message] of [
    ['user-new-login', /3 to 64 characters/],
    ['user-new-full_name', /Fill in this field/],
    ['user-new-institution_id', /Fill in this field/],
    ['user-new-password', /at least 10 characters/],
    ['user-new-password_repeat', /The two passwords differ/],
  ]) {
    assert.equal(await page.getAttribute(`#${id}`, 'aria-invalid'), 'true', id);
    const describedBy = (await page.getAttribute(`#${id}`, 'aria-describedby')).split(' ');
    assert.ok(describedBy.includes(`${id}-error`), `${id} is described by its error`);
    assert.match(await page.locator(`#${id}-error`).innerText(), message);
  }
  assert.match(await page.locator('#user-new-roles-error').innerText(), /Choose at least one/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'user-new-login', 'focus on the first bad field');
  assert.equal(session.requests.filter((r) => r.method === 'POST' && r.url.endsWith('/admin/users')).length, 0);
  await session.screenshot('en-admin-users-new-invalid');
}));

test('users: register two clinicians and a ministry analyst', () => step('users-register-two-clinicians-and-a-mini', async () => {
  for (const clinician of clinicians) {
    await registerUser(clinician, { institutionName: institution.name, roles: ['Clinician'] });
  }
  await registerUser(analyst, { institutionName: 'None: region-wide (e.g. the ministry)', roles: ['Ministry analyst'] });

  const { page } = session;
  await page.fill('#users-filter-q', clinicians[0].login);
  const row = page.locator('#main table tbody tr');
  assert.equal(await row.count(), 1);
  const text = await row.innerText();
  assert.match(text, /Ivanova Maria Petrovna/);
  assert.match(text, /Petrozavodsk City Hospital No\. 2/);
  assert.match(text, /Clinician/);
  assert.match(text, /Active/);

  await page.fill('#users-filter-q', '');
  await page.selectOption('#users-filter-role', 'ministry');
  assert.match(await page.locator('#main table tbody').innerText(), new RegExp(analyst.login));
  assert.match(await page.locator('#main table tbody').innerText(), /Region-wide/);
  await page.selectOption('#users-filter-role', '');
  await session.screenshot('en-admin-users');

  const users = await (await api.get('/api/v1/admin/users')).json();
  const created = users.find((u) => u.login === analyst.login);
  assert.deepEqual(created.roles, ['ministry']);
  assert.equal(created.institution_id, null);
}));

test('users: a taken login is reported at the login field', () => step('users-a-taken-login-is-reported-at-the-l', async () => {
  const { page } = session;
  await session.goto('/admin/users/new');
  await page.fill('#user-new-login', clinicians[0].login);
  await page.fill('#user-new-full_name', 'Someone Else');
  await page.selectOption('#user-new-institution_id', { label: institution.name });
  await page.fill('#user-new-password', PASSWORD);
  await page.fill('#user-new-password_repeat', PASSWORD);
  await page.click('#main button[type="submit"]');
  await page.locator('#user-new-login-error:not([hidden])').waitFor();
  assert.match(await page.locator('#user-new-login-error').innerText(), /This login is already registered/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'user-new-login');
}));

test('users: edit roles and name, set a password, de-register and register again', () => step('users-edit-roles-and-name-set-a-password', async () => {
  const { page } = session;
  const users = await (await api.get('/api/v1/admin/users')).json();
  const target = users.find((u) => u.login === clinicians[1].login);
  await session.goto('/admin/users');
  await page.click(`#main a:has-text("${clinicians[1].fullName}")`);
  await session.waitForRoute(`/admin/users/${target.id}`);
  assert.equal(await session.heading(), `User: ${clinicians[1].fullName}`);

  await page.fill('#user-edit-full_name', 'Petrov Sergei Ivanovich, MD');
  await page.getByRole('checkbox', { name: 'Administrator', exact: true }).check();
  await page.click('form[data-form-id="user-edit"] button[type="submit"]');
  await page.locator('form[data-form-id="user-edit"] .notice-success').waitFor();
  let stored = await (await api.get(`/api/v1/admin/users/${target.id}`)).json();
  assert.deepEqual([...stored.roles].sort(), ['admin', 'user']);
  assert.equal(stored.full_name, 'Petrov Sergei Ivanovich, MD');

  const fresh = 'reset-by-the-admin-3';
  await page.fill('#user-password-password', fresh);
  await page.fill('#user-password-password_repeat', fresh);
  await page.click('form[data-form-id="user-password"] button[type="submit"]');
  await page.locator('form[data-form-id="user-password"] .notice-success').waitFor();
  assert.equal(await page.inputValue('#user-password-password'), '', 'the password field is emptied');
  const check = await api.post('/api/v1/auth/login', { data: { login: target.login, password: fresh } });
  assert.equal(check.status(), 200, 'the new password works');
  await session.screenshot('en-admin-user-edit');

  await page.click('#main button:has-text("De-register")');
  await session.screenshot('en-admin-user-deregister-confirm', { fullPage: false });
  await confirm(page);
  await session.waitForNotice(/de-registered\./);
  assert.equal(await page.locator('#main .facts .badge').innerText(), 'De-registered');
  stored = await (await api.get(`/api/v1/admin/users/${target.id}`)).json();
  assert.equal(stored.active, false);

  await page.click('#main button:has-text("Register again")');
  await session.waitForNotice(/registered again\./);
  assert.equal(await page.locator('#main .facts .badge').innerText(), 'Active');
}));

test('roles: create a role, change its permissions, delete it; a held role is not deleted', () => step('roles-create-a-role-change-its-permissio', async () => {
  const { page } = session;
  const name = unique('nurse_');
  await session.goto('/admin/roles');
  await page.click('#main a:has-text("New role")');
  await session.waitForRoute('/admin/roles/new');
  await page.fill('#role-new-name', name);
  await page.fill('#role-new-description', 'Palliative care nurse');
  await page.getByRole('checkbox', { name: /^Patients/ }).check();
  await page.click('#main button[type="submit"]');
  await session.waitForRoute('/admin/roles');
  assert.match(await notices(page), new RegExp(`Role ${name} created`));
  const row = page.locator('#main table tbody tr', { hasText: name });
  assert.match(await row.innerText(), /Palliative care nurse/);

  await row.locator('a').click();
  await session.waitForRoute(/^\/admin\/roles\/\d+$/);
  await page.getByRole('checkbox', { name: /^Medical records/ }).check();
  await page.click('#main form button[type="submit"]');
  await session.waitForRoute('/admin/roles');
  const roles = await (await api.get('/api/v1/admin/roles')).json();
  assert.deepEqual([...roles.find((r) => r.name === name).permissions].sort(), ['medical_records', 'patients']);

  await page.locator('#main table tbody tr', { hasText: name }).locator('a').click();
  await session.waitForRoute(/^\/admin\/roles\/\d+$/);
  await page.click('#main button:has-text("Delete role")');
  await confirm(page);
  await session.waitForRoute('/admin/roles');
  assert.match(await notices(page), new RegExp(`Role ${name} deleted`));
  assert.equal(await page.locator('#main table tbody tr', { hasText: name }).count(), 0);

  const clinicianRole = roles.find((r) => r.name === 'user');
  await session.goto(`/admin/roles/${clinicianRole.id}`);
  assert.match(await page.locator('#main').innerText(), /users? holds? this role/);
  await page.click('#main button:has-text("Delete role")');
  await confirm(page);
  const alert = page.locator('#main [role="alert"]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /Users hold this role, so it cannot be deleted/);
  await session.screenshot('en-admin-role-in-use');
}));

test("an institution's administrator reads roles and reference books but changes neither", async () => {
  const own = await createInstitution(api);
  const local = await createUser(api, { roles: ['admin'], institution_id: own.id });
  const roles = await (await api.get('/api/v1/admin/roles')).json();
  const clinicianRole = roles.find((r) => r.name === 'user');
  await withSession(browser, { name: 'institution-admin-region-books' }, async (s) => {
    const { page } = s;
    await s.signIn(local.login, local.password);
    await s.goto('/admin/roles');
    assert.match(await page.locator('#main .notice').innerText(), /only a region-wide administrator/);
    assert.equal(await page.locator('#main a:has-text("New role")').count(), 0);
    await s.goto(`/admin/roles/${clinicianRole.id}`);
    assert.equal(await page.locator('#main form').count(), 0);
    assert.equal(await page.locator('#main button:has-text("Delete role")').count(), 0);
    assert.match(await page.locator('#main').innerText(), /Patients/);
    await s.goto('/admin/refs/institutions');
    assert.match(await page.locator('#main .notice').innerText(), /only a region-wide administrator/);
    assert.equal(await page.locator('#main a:has-text("Add an entry")').count(), 0);
    await s.goto(`/admin/refs/institutions/${own.id}`);
    assert.equal(await page.locator('#main form').count(), 0);
    assert.equal(await page.locator('#main button:has-text("Deactivate")').count(), 0);
  });
});

test('audit log: filters, and keyset paging to older entries', () => step('audit-log-filters-and-keyset-paging-to-o', async () => {
  const { page } = session;
  // Arrange: more than two pages of entries (reading the log is itself logged).
  for (let newest = 0; newest < 60; ) {
    const { items } = await (await api.get('/api/v1/admin/audit?limit=1')).json();
    newest = items[0].seq;
  }
  await session.goto('/admin/audit?limit=25');
  const seqs = async () => (await page.locator('#main table tbody th').allInnerTexts()).map(Number);
  const first = await seqs();
  assert.equal(first.length, 25);
  assert.deepEqual(first, [...first].sort((a, b) => b - a), 'newest first');
  assert.match(await page.locator('#main table thead').innerText(), /Hash chain/);
  // Each entry shows the previous entry's hash and its own, shortened, the full value in the title;
  // and each entry's "previous" is the hash of the entry before it.
  const hashes = page.locator('#main table tbody tr code.hash');
  const titles = await hashes.evaluateAll((codes) => codes.map((c) => c.title));
  assert.ok(titles.every((v) => /^[0-9a-f]{64}$/.test(v)), 'full hashes in the titles');
  assert.match(await hashes.first().innerText(), /^[0-9a-f]{8}…$/);
  const [, firstOwn, secondPrev, secondOwn] = titles;
  assert.notEqual(firstOwn, secondOwn);
  assert.equal(titles[0], secondOwn, 'the newest entry links to the one before it');
  assert.ok(secondPrev);
  await session.screenshot('en-admin-audit');

  await page.click('#main a:has-text("Older entries")');
  await session.waitForRoute(/^\/admin\/audit\?.*before=\d+/);
  const second = await seqs();
  assert.ok(second.length > 0);
  assert.ok(Math.max(...second) < Math.min(...first), 'the older page continues where the first ended');
  assert.match(await page.locator('#main caption').innerText(), new RegExp(`older than No\\. ${Math.min(...first)}`));

  await session.goto('/admin/audit');
  await page.fill('#audit-filter-actor', ADMIN.login);
  await page.fill('#audit-filter-action', 'admin.user.create');
  await page.click('#main button:has-text("Show entries")');
  await session.waitForRoute(/^\/admin\/audit\?actor=admin&action=admin\.user\.create/);
  const actions = await page.locator('#main table tbody td:nth-of-type(3) code').allInnerTexts();
  assert.ok(actions.length >= 3, 'the three users registered above');
  assert.ok(actions.every((a) => a === 'admin.user.create'), actions.join(','));
  assert.match(await notices(page), /Only entries that match the filters are shown/);
  await session.screenshot('en-admin-audit-filtered');
}));
