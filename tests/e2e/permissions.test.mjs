// Menus show only what the user's permissions allow: a clinician (role `user`) and a ministry
// analyst (role `ministry`) see no Administration, and an administration address tells them
// plainly that they are not permitted (without asking the server for the data).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiAs, createInstitution, createUser, launchBrowser, withSession } from './harness.mjs';

let browser;
let clinician;
let analyst;
let institution;

before(async () => {
  browser = await launchBrowser();
  const api = await apiAs();
  institution = await createInstitution(api, { name: 'Kondopoga Central District Hospital' });
  clinician = await createUser(api, { full_name: 'Kuznetsova Anna', roles: ['user'], institution_id: institution.id });
  analyst = await createUser(api, { full_name: 'Orlov Dmitry', roles: ['ministry'], institution_id: null });
  await api.dispose();
});

after(async () => {
  await browser?.close();
});

async function menu(page) {
  return page.locator('#nav').innerText();
}

const ADMIN_PAGES = ['/admin/users', '/admin/users/new', '/admin/roles', '/admin/refs/institutions', '/admin/audit'];

for (const [who, user, expected] of [
  ['a clinician', () => clinician, { place: 'Kondopoga Central District Hospital', roles: 'Clinician', permissions: ['Patients', 'Medical records', 'Reports of the institution'] }],
  ['a ministry analyst', () => analyst, { place: 'None: a region-wide account', roles: 'Ministry analyst', permissions: ['Summary reports'] }],
]) {
  test(`${who} sees no Administration, and administration addresses say "not permitted"`, async () => {
    await withSession(browser, { name: `permissions-${user().login}` }, async (s) => {
      await s.signIn(user().login, user().password);
      const nav = await menu(s.page);
      assert.doesNotMatch(nav, /Administration|Users|Roles|Reference books|Audit log/i);
      assert.match(nav, /Home/);
      assert.match(nav, /Password and second factor/);

      const main = await s.page.locator('#main').innerText();
      assert.match(main, new RegExp(expected.place));
      assert.match(main, new RegExp(`Roles\\s+${expected.roles}`));
      for (const p of expected.permissions) assert.match(main, new RegExp(p));
      assert.doesNotMatch(main, /Users|Audit log|Reference books/, 'no shortcuts to administration');
      await s.screenshot(`en-home-${who.includes('clinician') ? 'clinician' : 'ministry'}`);

      for (const route of ADMIN_PAGES) {
        await s.goto(route);
        assert.equal(await s.heading(), 'Not permitted', route);
        assert.match(await s.page.locator('#main [role="status"]').innerText(), /does not have the permission this page needs \(Administration\)/);
      }
      await s.screenshot(`en-not-permitted-${who.includes('clinician') ? 'clinician' : 'ministry'}`);
      const adminCalls = s.requests.filter((r) => r.url.includes('/api/v1/admin/'));
      assert.deepEqual(adminCalls, [], 'the client does not even ask');
    });
  });
}

test('the server refuses an administration call of a clinician all the same (403 with a message)', async () => {
  await withSession(browser, { name: 'clinician-403' }, async (s) => {
    await s.signIn(clinician.login, clinician.password);
    const message = await s.page.evaluate(async () => {
      const { get, errorMessage } = await import('/js/api.js');
      try {
        await get('/admin/users');
        return 'no error';
      } catch (err) {
        return `${err.status} ${err.code}: ${errorMessage(err)}`;
      }
    });
    assert.equal(message, '403 forbidden: Your account is not permitted to do this.');
  });
});

test('an unknown address shows "Page not found"', async () => {
  await withSession(browser, { name: 'not-found' }, async (s) => {
    await s.signIn(clinician.login, clinician.password);
    await s.goto('/no/such/page');
    assert.equal(await s.heading(), 'Page not found');
    await s.screenshot('en-not-found');
  });
});
