// Session expiry without losing work: when the session ends while a form is open, the next
// request gets 401, the sign-in page says why, and after signing in the same page comes back
// with what had been typed (passwords excepted). Fields marked `data-sensitive` (patient data in
// clear, on later pages) are kept in memory only, never in browser storage, and a draft is never
// shown to another user. When another user signs in from another tab, this tab's session ends
// (its unlocked keys forgotten) as soon as it reads the account again.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, PASSWORD, apiAs, apiContext, createInstitution, createUser, launchBrowser, unique, withSession } from './harness.mjs';

let browser;
let api;
let institution;
let clinician;

before(async () => {
  browser = await launchBrowser();
  api = await apiAs();
  institution = await createInstitution(api, { name: 'Segezha Central District Hospital' });
  clinician = await createUser(api, { roles: ['user'], institution_id: institution.id });
});

after(async () => {
  await api?.dispose();
  await browser?.close();
});

async function fillNewUser(page, login) {
  await page.fill('#user-new-login', login);
  await page.fill('#user-new-full_name', 'Volkova Elena Sergeevna');
  await page.selectOption('#user-new-institution_id', String(institution.id));
  await page.getByRole('checkbox', { name: 'Administrator', exact: true }).check();
  await page.fill('#user-new-password', PASSWORD);
  await page.fill('#user-new-password_repeat', PASSWORD);
}

async function storedDraft(page) {
  return page.evaluate(() => ({ session: { ...sessionStorage }, local: { ...localStorage } }));
}

test('the session cookie is gone: sign in again and the form comes back filled in', async () => {
  await withSession(browser, { name: 'expiry-cookie' }, async (s) => {
    const login = unique('volkova');
    await s.signIn(ADMIN.login, ADMIN.password);
    await s.goto('/admin/users/new');
    await fillNewUser(s.page, login);

    await s.context.clearCookies();
    await s.page.click('#main button[type="submit"]');
    await s.waitForRoute('/login');
    assert.match(await s.page.locator('#main .notice').innerText(), /Your session has ended\. Sign in again to continue/);
    assert.equal(await s.page.locator('#nav').isHidden(), true);
    await s.screenshot('en-login-session-expired');

    const storage = await storedDraft(s.page);
    const everything = JSON.stringify(storage);
    assert.match(everything, new RegExp(login), 'the typed login is kept for this tab');
    assert.doesNotMatch(everything, new RegExp(PASSWORD), 'passwords are never kept');
    assert.deepEqual(Object.keys(storage.local).filter((k) => k !== 'palreg.lang'), [], 'nothing in localStorage');

    await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: '/admin/users/new' });
    assert.equal(await s.page.inputValue('#user-new-login'), login);
    assert.equal(await s.page.inputValue('#user-new-full_name'), 'Volkova Elena Sergeevna');
    assert.equal(await s.page.inputValue('#user-new-institution_id'), String(institution.id));
    assert.equal(await s.page.getByRole('checkbox', { name: 'Administrator', exact: true }).isChecked(), true);
    assert.equal(await s.page.getByRole('checkbox', { name: 'Clinician', exact: true }).isChecked(), true);
    assert.equal(await s.page.inputValue('#user-new-password'), '', 'passwords are typed again');
    assert.match(await s.page.locator('#main .notice-info').innerText(), /has been put back\. Check it and save again/);
    await s.screenshot('en-admin-users-new-restored');
    assert.equal(JSON.stringify(await storedDraft(s.page)).includes(login), false, 'the draft is used up');

    await s.page.fill('#user-new-password', PASSWORD);
    await s.page.fill('#user-new-password_repeat', PASSWORD);
    await s.page.click('#main button[type="submit"]');
    await s.waitForRoute('/admin/users');
    const users = await (await api.get('/api/v1/admin/users')).json();
    const created = users.find((u) => u.login === login);
    assert.ok(created, 'the user was registered after all');
    assert.deepEqual([...created.roles].sort(), ['admin', 'user']);
  });
});

test('the session was ended elsewhere (server-side logout): same restore', async () => {
  await withSession(browser, { name: 'expiry-logout' }, async (s) => {
    const name = unique('hospice_nurse_');
    await s.signIn(ADMIN.login, ADMIN.password);
    await s.goto('/admin/roles/new');
    await s.page.fill('#role-new-name', name);
    await s.page.fill('#role-new-description', 'Nurse of the hospice ward');
    await s.page.getByRole('checkbox', { name: 'Patients', exact: true }).check();

    // Another window of the same session signs out: the server revokes the session, while this
    // tab still holds the (now dead) cookie.
    const cookie = (await s.context.cookies()).find((c) => c.name === 'palreg_session');
    assert.ok(cookie, 'the browser holds the session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');
    const elsewhere = await apiContext({ Cookie: `palreg_session=${cookie.value}` });
    assert.equal((await elsewhere.post('/api/v1/auth/logout')).status(), 204);
    await elsewhere.dispose();
    assert.ok((await s.context.cookies()).some((c) => c.name === 'palreg_session'), 'this tab still has its cookie');

    await s.page.click('#main button[type="submit"]');
    await s.waitForRoute('/login');
    await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: '/admin/roles/new' });
    assert.equal(await s.page.inputValue('#role-new-name'), name);
    assert.equal(await s.page.inputValue('#role-new-description'), 'Nurse of the hospice ward');
    assert.equal(await s.page.getByRole('checkbox', { name: 'Patients', exact: true }).isChecked(), true);
    await s.page.click('#main button[type="submit"]');
    await s.waitForRoute('/admin/roles');
    const roles = await (await api.get('/api/v1/admin/roles')).json();
    assert.deepEqual(roles.find((r) => r.name === name)?.permissions, ['patients']);
  });
});

test('a page opened after the session ended: sign-in, then that page, filters kept', async () => {
  await withSession(browser, { name: 'expiry-on-navigation' }, async (s) => {
    await s.signIn(ADMIN.login, ADMIN.password);
    await s.goto('/admin/audit?actor=admin&limit=25');
    await s.page.fill('#audit-filter-action', 'auth.login');
    await s.context.clearCookies();
    // The audit page builds its filter form, then asks for the entries: 401 while rendering.
    await s.page.click('#main button:has-text("Show entries")');
    await s.waitForRoute('/login');
    assert.match(await s.page.locator('#main .notice').innerText(), /Your session has ended/);
    await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: '/admin/audit?actor=admin&action=auth.login&limit=25' });
    assert.equal(await s.page.inputValue('#audit-filter-action'), 'auth.login');
    const actions = await s.page.locator('#main table tbody td:nth-of-type(3) code').allInnerTexts();
    assert.ok(actions.length > 0 && actions.every((a) => a === 'auth.login'));
  });
});

test('a draft is never shown to another user who signs in at the same computer', async () => {
  await withSession(browser, { name: 'expiry-other-user' }, async (s) => {
    const login = unique('secret');
    await s.signIn(ADMIN.login, ADMIN.password);
    await s.goto('/admin/users/new');
    await fillNewUser(s.page, login);
    await s.context.clearCookies();
    await s.page.click('#main button[type="submit"]');
    await s.waitForRoute('/login');

    await s.signIn(clinician.login, clinician.password, { expectRoute: '/home' });
    assert.equal(JSON.stringify(await storedDraft(s.page)).includes(login), false, 'the draft is discarded');
    await s.page.click('#topbar button:has-text("Sign out")');
    await s.waitForRoute('/login');

    await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: '/home' });
    await s.goto('/admin/users/new');
    assert.equal(await s.page.inputValue('#user-new-login'), '', 'nothing comes back for the first user either');
  });
});

test('someone else signs in from another tab: this tab ends its session and forgets the unlocked key', async () => {
  await withSession(browser, { name: 'other-user-other-tab' }, async (s) => {
    await s.signIn(clinician.login, clinician.password);
    // A key pair unlocked in this tab's memory (made in WASM as the Keys page makes it).
    const id = await s.page.evaluate(async () => {
      const { get } = await import('/js/api.js');
      const { loadCrypto } = await import('/js/crypto.js');
      const { setUnlocked } = await import('/js/keystore.js');
      const me = await get('/me');
      setUnlocked(me.id, (await loadCrypto()).UserKeyPair.generate());
      return me.id;
    });

    // Another tab of the same browser signs out and the administrator signs in: the cookie,
    // shared by both tabs, is now the administrator's.
    const other = await s.context.newPage();
    s.watch(other);
    await other.goto('/#/home');
    await other.click('#topbar button:has-text("Sign out")');
    await other.fill('#login-login', ADMIN.login);
    await other.fill('#login-password', ADMIN.password);
    await other.click('#main form button[type="submit"]');
    await other.waitForFunction(() => document.getElementById('main')?.dataset.route === '/home');
    await other.close();

    // This tab still shows the clinician; a page that reads the account again (GET /me) finds
    // someone else, and ends the clinician's session here.
    await s.page.evaluate(() => {
      window.location.hash = '#/password';
    });
    await s.waitForRoute('/login');
    assert.equal(await s.page.locator('#nav').isHidden(), true);
    assert.equal(await s.page.evaluate(async (uid) => (await import('/js/keystore.js')).unlockedPair(uid) === null, id), true, 'the key is forgotten');
  });
});

test('data-sensitive fields are kept in memory only: never in storage, gone after a reload', async () => {
  await withSession(browser, { name: 'sensitive-drafts' }, async (s) => {
    await s.signIn(clinician.login, clinician.password);
    const secret = 'Иванова-Тайная';
    const phone = '+7 921 000-00-00';
    // A form shaped like the patient forms to come, built in the page and run through the module
    // the router uses. (No eval here: the page's CSP forbids it.)
    const result = await s.page.evaluate(
      async ({ secret, phone }) => {
        const drafts = await import('/js/drafts.js');
        const build = () => {
          const form = document.createElement('form');
          form.dataset.formId = 'patient-new';
          const field = (name, attrs = {}) => {
            const input = document.createElement('input');
            input.name = name;
            Object.entries(attrs).forEach(([k, v]) => input.setAttribute(k, v));
            return input;
          };
          const identity = document.createElement('fieldset');
          identity.dataset.sensitive = '';
          identity.append(field('phone'));
          form.append(field('surname', { 'data-sensitive': '' }), field('district'), field('pin', { type: 'password' }), identity);
          const root = document.createElement('div');
          root.append(form);
          return { root, form };
        };
        const first = build();
        first.form.elements.surname.value = secret;
        first.form.elements.phone.value = phone;
        first.form.elements.district.value = 'kondopoga';
        first.form.elements.pin.value = '1234';
        drafts.saveDraft('/patients/new', 42, first.root);
        const stored = JSON.stringify({ ...sessionStorage, ...localStorage });

        const again = build();
        drafts.applyForms(again.root, drafts.takeDraft('/patients/new', 42));
        const restored = Object.fromEntries([...again.form.elements].filter((e) => e.name).map((e) => [e.name, e.value]));

        drafts.saveDraft('/patients/new', 42, first.root);
        const otherUser = drafts.takeDraft('/patients/new', 43);
        drafts.saveDraft('/patients/new', 42, first.root);
        return { stored, restored, otherUser };
      },
      { secret, phone },
    );
    assert.ok(!result.stored.includes(secret) && !result.stored.includes(phone), 'sensitive values never reach storage');
    assert.ok(!result.stored.includes('1234'), 'passwords never reach storage');
    assert.match(result.stored, /kondopoga/, 'ordinary values do');
    assert.deepEqual(result.restored, { surname: secret, district: 'kondopoga', pin: '', phone });
    assert.equal(result.otherUser, null, 'another user gets nothing');

    // A reload empties the module's memory: only the ordinary value remains.
    await s.page.reload();
    await s.waitForRoute('/home');
    const afterReload = await s.page.evaluate(async () => {
      const drafts = await import('/js/drafts.js');
      return drafts.takeDraft('/patients/new', 42);
    });
    assert.deepEqual(afterReload, { plain: { 'patient-new': { district: 'kondopoga' } }, sensitive: {} });
    s.assertNothingSent(secret, phone);
  });
});
