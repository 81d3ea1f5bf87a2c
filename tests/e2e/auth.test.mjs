// Authorization: keyboard-only sign-in, clear messages for wrong credentials, a locked account
// and rate limiting, sign-out, and the password change that ends the session.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, PASSWORD, Session, apiAs, createInstitution, createUser, launchBrowser, withSession } from './harness.mjs';

let browser;
let api;
let institution;

before(async () => {
  browser = await launchBrowser();
  api = await apiAs();
  institution = await createInstitution(api);
});

after(async () => {
  await api?.dispose();
  await browser?.close();
});

async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return { tag: el?.tagName, id: el?.id ?? '', text: el?.textContent?.trim() ?? '', cls: el?.className ?? '' };
  });
}

describe('sign-in', () => {
  test('keyboard only: skip link, Tab to the fields, Enter signs in and focus lands on the heading', async () => {
    await withSession(browser, { name: 'keyboard-sign-in' }, async (s) => {
      await s.page.goto('/');
      await s.waitForRoute('/login');
      await s.screenshot('en-login');

      await s.page.keyboard.press('Tab');
      let now = await focused(s.page);
      assert.equal(now.cls, 'skip-link', 'the first Tab reaches the skip link');
      assert.equal(now.text, 'Skip to main content');
      await s.page.keyboard.press('Enter');
      assert.equal((await focused(s.page)).tag, 'H1', 'the skip link moves focus to the page heading');

      await s.page.keyboard.press('Tab');
      assert.equal((await focused(s.page)).id, 'login-login', 'Tab from the heading reaches the login field');
      await s.page.keyboard.type(ADMIN.login);
      await s.page.keyboard.press('Tab');
      assert.equal((await focused(s.page)).id, 'login-password');
      await s.page.keyboard.type(ADMIN.password);
      await s.page.keyboard.press('Enter');

      await s.waitForRoute('/home');
      assert.equal(await s.heading(), 'Home');
      now = await focused(s.page);
      assert.equal(now.tag, 'H1', 'after navigation focus is on the new heading');
      assert.equal(await s.page.locator('#topbar .account-name').innerText(), 'Administrator');
    });
  });

  test('a wrong password says so, clears the password and keeps the login', async () => {
    await withSession(browser, { name: 'wrong-password' }, async (s) => {
      await s.goto('/login');
      await s.page.fill('#login-login', ADMIN.login);
      await s.page.fill('#login-password', 'not-the-password');
      await s.page.click('#main button[type="submit"]');
      const alert = s.page.locator('#main [role="alert"]');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Wrong login or password/);
      assert.equal(await s.page.inputValue('#login-password'), '');
      assert.equal(await s.page.inputValue('#login-login'), ADMIN.login);
      assert.equal((await focused(s.page)).id, 'login-password');
      assert.ok(s.apiRefusals.some((r) => r.url.endsWith('/api/v1/auth/login')), 'the refusal came from the server');
      await s.screenshot('en-login-wrong-password');
    });
  });

  test('empty fields are reported next to the fields, without asking the server', async () => {
    await withSession(browser, { name: 'empty-login' }, async (s) => {
      await s.goto('/login');
      await s.page.click('#main button[type="submit"]');
      assert.equal(await s.page.getAttribute('#login-login', 'aria-invalid'), 'true');
      const describedBy = await s.page.getAttribute('#login-login', 'aria-describedby');
      assert.match(await s.page.locator(`#${describedBy}`).innerText(), /Fill in this field/);
      assert.equal((await focused(s.page)).id, 'login-login');
      assert.equal(s.requests.filter((r) => r.url.endsWith('/auth/login')).length, 0);
    });
  });

  test('a locked account says how many minutes to wait', async () => {
    const user = await createUser(api, { institution_id: institution.id });
    for (let i = 0; i < 5; i += 1) {
      const response = await api.post('/api/v1/auth/login', { data: { login: user.login, password: 'wrong-password-x' } });
      assert.equal(response.status(), 401);
    }
    await withSession(browser, { name: 'locked' }, async (s) => {
      await s.goto('/login');
      await s.signIn(user.login, user.password, { expectRoute: null });
      const alert = s.page.locator('#main [role="alert"]');
      await alert.waitFor();
      assert.match(await alert.innerText(), /the account is locked\. Try again in 15 minutes/);
      await s.screenshot('en-login-locked');
    });
  });

  test('rate limiting says how long to wait (a 429 from the server, simulated in the browser)', async () => {
    await withSession(browser, { name: 'rate-limited' }, async (s) => {
      await s.page.route('**/api/v1/auth/login', (route) =>
        route.fulfill({
          status: 429,
          headers: { 'Retry-After': '42', 'Content-Type': 'application/json' },
          body: JSON.stringify({ error: { code: 'rate_limited', message: 'too many sign-in attempts from this address' } }),
        }),
      );
      await s.goto('/login');
      await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: null });
      const alert = s.page.locator('#main [role="alert"]');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Too many sign-in attempts from this computer\. Wait 42 seconds/);
    });
  });

  test('a page asked for without a session leads to sign-in, then to that page', async () => {
    await withSession(browser, { name: 'return-to' }, async (s) => {
      await s.page.goto('/#/admin/roles');
      await s.waitForRoute('/login');
      await s.signIn(ADMIN.login, ADMIN.password, { expectRoute: '/admin/roles' });
      assert.equal(await s.heading(), 'Roles and permissions');
    });
  });
});

describe('sign-out and password change', () => {
  test('signing out ends the session: the pages ask for sign-in again', async () => {
    await withSession(browser, { name: 'sign-out' }, async (s) => {
      await s.signIn(ADMIN.login, ADMIN.password);
      await s.page.click('#topbar button:has-text("Sign out")');
      await s.waitForRoute('/login');
      assert.ok(s.requests.some((r) => r.method === 'POST' && r.url.endsWith('/api/v1/auth/logout')));
      await s.page.goto('/#/home');
      await s.waitForRoute('/login');
      assert.equal(await s.page.locator('#nav').isHidden(), true, 'no menu without a session');
    });
  });

  test('changing the password signs out, and the new password works', async () => {
    const user = await createUser(api, { institution_id: institution.id });
    const newPassword = 'a-brand-new-password-2';
    await withSession(browser, { name: 'change-password' }, async (s) => {
      await s.signIn(user.login, user.password);
      await s.goto('/password');
      await s.page.fill('#password-current_password', 'not-my-password');
      await s.page.fill('#password-new_password', newPassword);
      await s.page.fill('#password-new_password_repeat', newPassword);
      await s.page.click('#main button[type="submit"]');
      await s.page.locator('#password-current_password-error').waitFor();
      assert.match(await s.page.locator('#password-current_password-error').innerText(), /The current password is wrong/);

      await s.page.fill('#password-current_password', user.password);
      await s.page.fill('#password-new_password', 'short');
      await s.page.fill('#password-new_password_repeat', 'short');
      await s.page.click('#main button[type="submit"]');
      assert.match(await s.page.locator('#password-new_password-error').innerText(), /at least 10 characters/);

      await s.page.fill('#password-current_password', user.password);
      await s.page.fill('#password-new_password', newPassword);
      await s.page.fill('#password-new_password_repeat', newPassword);
      await s.page.click('#main button[type="submit"]');
      await s.waitForRoute('/login');
      assert.match(await s.page.locator('#main [role="status"]').first().innerText(), /Your password has been changed/);
      await s.signIn(user.login, newPassword);
      assert.equal(await s.heading(), 'Home');
    });
  });
});
