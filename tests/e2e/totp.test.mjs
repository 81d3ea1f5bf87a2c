// The second factor (TOTP) in the browser: setting it up on the page "Password and second
// factor" (the QR code as SVG, the key in groups of four, the first code), the recovery codes
// shown once and signing in with one, signing in with a code, making new recovery codes, the
// administrator's reset of a lost phone, turning it off with a code, and a role that
// requires a second factor sending its holders to enrolment, at sign-in and in the middle of a
// session. A language switch keeps the key being set up and the recovery codes on screen (in the
// page's memory, never in storage), and so does the session ending under the user before the
// codes are saved: the same user signing in again in the tab sees the same codes, anyone else
// never does. The codes are computed here from the key the page shows (RFC 6238: HMAC-SHA1,
// 30-second steps, 6 digits), as an authenticator app would.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN, Session, apiAs, apiContext, createInstitution, createUser, endSessionElsewhere, launchBrowser, unique, withSession } from './harness.mjs';

const STEP_SECS = 30;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (spaces and padding ignored) to bytes. */
function base32Decode(text) {
  const out = [];
  let buffer = 0;
  let bits = 0;
  for (const char of text.replace(/[\s=]/g, '').toUpperCase()) {
    const value = BASE32.indexOf(char);
    if (value < 0) throw new Error(`not base32: ${char}`);
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >>> bits) & 0xff);
      buffer &= (1 << bits) - 1;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP, 6 digits. */
function hotp(key, counter) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

const stepNow = () => Math.floor(Date.now() / 1000 / STEP_SECS);

/**
 * An authenticator app holding one key. The server accepts the codes of the steps around now
 * (one either side), each at most once and only later than the last one it accepted.
 */
class Authenticator {
  constructor(secret) {
    this.key = base32Decode(secret);
    this.lastStep = -Infinity;
  }

  /** A code the server takes now (waits for the next step when all the window's are used). */
  async code() {
    for (;;) {
      const seconds = Date.now() / 1000;
      const step = Math.floor(seconds / STEP_SECS);
      // The previous step's code only while the server cannot have moved past it meanwhile.
      const earliest = seconds - step * STEP_SECS < STEP_SECS - 5 ? step - 1 : step;
      const chosen = Math.max(earliest, this.lastStep + 1);
      if (chosen <= step + 1) {
        this.lastStep = chosen;
        return hotp(this.key, chosen);
      }
      await sleep(1000);
    }
  }

  /** Six digits that are none of the codes around now. */
  wrongCode() {
    const step = stepNow();
    const near = new Set([-2, -1, 0, 1, 2].map((d) => hotp(this.key, step + d)));
    for (let n = 0; ; n += 1) {
      const candidate = String((n * 7919) % 1_000_000).padStart(6, '0');
      if (!near.has(candidate)) return candidate;
    }
  }
}

let browser;
let api;
let institution;
let doctor;
let admin;
let authenticator;
/** The doctor's recovery codes, as last shown. */
let recoveryCodes;

before(async () => {
  browser = await launchBrowser();
  api = await apiAs();
  institution = await createInstitution(api);
  doctor = await createUser(api, { institution_id: institution.id });
  admin = await Session.open(browser);
  await admin.signIn(ADMIN.login, ADMIN.password);
});

after(async () => {
  try {
    admin?.assertClean();
  } finally {
    await admin?.close();
    await api?.dispose();
    await browser?.close();
  }
});

async function json(response, status) {
  const text = await response.text();
  assert.equal(response.status(), status, `${response.url()}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A recovery code as the page shows it. */
const RECOVERY_CODE = /^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$/;

/**
 * Turns the second factor on with the authenticator's code (the confirmation form is open),
 * checks the recovery codes the page then shows once against the server's answer, and returns
 * them, still on screen.
 */
async function confirmAndSeeRecoveryCodes(s, app, noticeText = /The second factor is on/) {
  const { page } = s;
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp/confirm') && r.request().method() === 'POST');
  await page.fill('#totp-confirm-code', await app.code());
  await page.click('form[data-form-id="totp-confirm"] button[type="submit"]');
  const confirmed = await json(await answer, 200);
  await s.waitForNotice(noticeText);
  return seeRecoveryCodes(s, confirmed);
}

/** The recovery codes on screen: the ones the server answered, with the warning and buttons. */
async function seeRecoveryCodes(s, answer) {
  const { page } = s;
  await page.locator('#recovery-codes').waitFor();
  const shown = await page.locator('#recovery-codes li').allInnerTexts();
  assert.equal(shown.length, 10);
  for (const code of shown) assert.match(code, RECOVERY_CODE);
  assert.deepEqual(shown, answer.recovery_codes, 'the codes the server made');
  assert.equal(answer.recovery_codes_left, 10);
  assert.match(await page.locator('#recovery-codes-panel').innerText(), /Save these recovery codes now: they are shown only this once/);
  // Downloaded as the user would (the page's Content-Security-Policy lets no script fetch the
  // blob: address, so the file is taken from the browser's download).
  const [file] = await Promise.all([page.waitForEvent('download'), page.click('#recovery-codes-download')]);
  assert.match(file.suggestedFilename(), /^palreg-recovery-codes-.+\.txt$/);
  const text = await readFile(await file.path(), 'utf8');
  for (const code of shown) assert.ok(text.includes(code), `${code} in the text file`);
  return shown;
}

/** The user as the administrators' API shows it. */
async function userView(login) {
  const users = await json(await api.get('/api/v1/admin/users'), 200);
  return users.find((u) => u.login === login);
}

/** Whether `login` signs in with the password alone (200), or is asked for a code (401). */
async function passwordAloneStatus(user) {
  const anonymous = await apiContext();
  try {
    const response = await anonymous.post('/api/v1/auth/login', { data: { login: user.login, password: user.password } });
    return { status: response.status(), code: response.ok() ? null : (await response.json()).error.code };
  } finally {
    await anonymous.dispose();
  }
}

/**
 * Starts enrolment on the account page (already open), checks the QR code the page drew against
 * the server's modules and the key it wrote out, and returns an authenticator holding that key.
 */
async function startEnrolment(s) {
  const { page } = s;
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp') && r.request().method() === 'POST');
  await page.click('#totp-start');
  const enrolment = await json(await answer, 201);
  await page.locator('#totp-qr').waitFor();

  const drawn = await page.evaluate(() => {
    const svg = document.getElementById('totp-qr');
    return {
      namespace: svg.namespaceURI,
      viewBox: svg.getAttribute('viewBox'),
      label: svg.getAttribute('aria-label'),
      rects: [...svg.querySelectorAll('rect')].map((r) => ['x', 'y', 'width', 'height', 'fill'].map((a) => r.getAttribute(a))),
    };
  });
  const n = enrolment.qr.length;
  const size = n + 8;
  assert.equal(drawn.namespace, 'http://www.w3.org/2000/svg');
  assert.equal(drawn.viewBox, `0 0 ${size} ${size}`, 'the code and a light border of 4 modules');
  assert.match(drawn.label, /QR code/);
  const [background, ...modules] = drawn.rects;
  assert.deepEqual(background, ['0', '0', String(size), String(size), '#ffffff'], 'a light background under everything');
  // Paint the dark runs back into a grid: it must be the server's code, moved in by the border.
  const grid = Array.from({ length: size }, () => Array(size).fill('0'));
  for (const [x, y, width, height, fill] of modules) {
    assert.equal(fill, '#000000');
    assert.equal(height, '1');
    for (let i = 0; i < Number(width); i += 1) grid[Number(y)][Number(x) + i] = '1';
  }
  const border = '0'.repeat(4);
  const expected = [
    ...Array(4).fill('0'.repeat(size)),
    ...enrolment.qr.map((row) => `${border}${row}${border}`),
    ...Array(4).fill('0'.repeat(size)),
  ];
  assert.deepEqual(grid.map((row) => row.join('')), expected, 'the drawn modules are the server\'s QR code');

  const shown = await page.locator('#totp-secret').innerText();
  assert.match(shown, /^(?:[A-Z2-7]{4} )*[A-Z2-7]{1,4}$/, 'the key in groups of four');
  assert.equal(shown.replace(/ /g, ''), enrolment.secret);
  assert.match(enrolment.uri, /^otpauth:\/\/totp\//);
  return new Authenticator(shown);
}

test('RFC 6238: the code helper gives the published SHA-1 value', () => {
  // RFC 6238 appendix B: T = 59 s, key "12345678901234567890", 8 digits 94287082.
  const key = base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  assert.equal(key.toString(), '12345678901234567890');
  assert.equal(hotp(key, Math.floor(59 / STEP_SECS)), '287082');
});

test('set up, sign out, sign in with a code; the administrator resets it; set up again and turn it off', async () => {
  const s = await Session.open(browser);
  const step = (name, fn) => s.step(name, fn);
  try {
    await s.signIn(doctor.login, doctor.password);

    await step('totp-enrol', async () => {
      const { page } = s;
      await page.click('#nav a:has-text("Password and second factor")');
      await s.waitForRoute('/password');
      assert.equal(await s.heading(), 'Password and second factor');
      assert.match(await page.locator('#totp-status').innerText(), /Off\s+Signing in asks for the password only/);
      authenticator = await startEnrolment(s);
      assert.equal(await page.getAttribute('#totp-confirm-code', 'inputmode'), 'numeric');
      assert.equal(await page.getAttribute('#totp-confirm-code', 'autocomplete'), 'one-time-code');
      await s.screenshot('en-account-totp-enrol');

      // Not six digits: said beside the field, without asking the server.
      const confirms = () => s.requests.filter((r) => r.url.endsWith('/api/v1/me/totp/confirm')).length;
      await page.fill('#totp-confirm-code', '12345');
      await page.click('form[data-form-id="totp-confirm"] button[type="submit"]');
      assert.match(await page.locator('#totp-confirm-code-error').innerText(), /Enter the 6 digits the app shows/);
      assert.equal(confirms(), 0);

      await page.fill('#totp-confirm-code', authenticator.wrongCode());
      await page.click('form[data-form-id="totp-confirm"] button[type="submit"]');
      await page.locator('#totp-confirm-code-error:not([hidden])').waitFor();
      assert.match(await page.locator('#totp-confirm-code-error').innerText(), /This code is wrong or has been used already/);
      assert.equal(await page.getAttribute('#totp-confirm-code', 'aria-invalid'), 'true');

      // As the app shows it: "123 456".
      const code = await authenticator.code();
      const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp/confirm'));
      await page.fill('#totp-confirm-code', `${code.slice(0, 3)} ${code.slice(3)}`);
      await page.click('form[data-form-id="totp-confirm"] button[type="submit"]');
      await s.waitForNotice(/The second factor is on/);
      // The recovery codes, once, before anything else.
      recoveryCodes = await seeRecoveryCodes(s, await json(await answer, 200));
      assert.equal(await page.locator('#totp-status').count(), 0, 'only the codes until they are saved');
      await s.screenshot('en-account-totp-recovery-codes');
      await page.click('#recovery-codes-done');
      assert.match(await page.locator('#totp-status').innerText(), /On\s+Signing in asks for a code/);
      assert.equal(await page.locator('#recovery-codes').count(), 0, 'the codes are not shown again');
      assert.match(await page.locator('#recovery-codes-left').innerText(), /^10 recovery codes left\.$/);
      assert.equal(await page.locator('#totp-qr').count(), 0, 'the key is not shown again');
      assert.equal(await page.locator('#totp-secret').count(), 0);
      await s.screenshot('en-account-totp-on');
      assert.equal((await userView(doctor.login)).totp_enabled, true);
      assert.deepEqual(await passwordAloneStatus(doctor), { status: 401, code: 'totp_required' });
    });

    await step('totp-sign-in', async () => {
      const { page } = s;
      await page.click('#topbar button:has-text("Sign out")');
      await s.waitForRoute('/login');
      await s.signIn(doctor.login, doctor.password, { expectRoute: null });
      await page.locator('#login-totp').waitFor();
      assert.match(await page.locator('#main form .notice').innerText(), /This account has a second factor/);
      // Letters too: the field takes a recovery code as well.
      assert.equal(await page.getAttribute('#login-totp', 'inputmode'), 'text');
      assert.match(await page.locator('label[for="login-totp"]').innerText(), /Code from the app, or a recovery code/);
      assert.match(await page.locator('#login-totp-hint').innerText(), /Enter one of your recovery codes/);
      assert.equal(await page.getAttribute('#login-totp', 'autocomplete'), 'one-time-code');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'login-totp', 'focus on the code field');
      assert.equal(await page.inputValue('#login-login'), doctor.login, 'the login stays');
      assert.equal(await page.inputValue('#login-password'), doctor.password, 'the password that was right stays');
      await s.screenshot('en-login-totp');

      await page.fill('#login-totp', authenticator.wrongCode());
      await page.click('#main form button[type="submit"]');
      await page.locator('#login-totp-error:not([hidden])').waitFor();
      assert.match(await page.locator('#login-totp-error').innerText(), /This code is wrong or has been used already/);
      assert.equal(await page.inputValue('#login-totp'), '', 'the wrong code is cleared');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'login-totp');
      await s.screenshot('en-login-totp-wrong');

      await page.fill('#login-totp', await authenticator.code());
      await page.click('#main form button[type="submit"]');
      await s.waitForRoute('/home');
      const logins = s.requestBodies().filter((r) => r.url.endsWith('/api/v1/auth/login')).map((r) => JSON.parse(r.body));
      assert.equal(logins.at(-3).totp, undefined, 'the first try sends no code');
      assert.match(logins.at(-1).totp, /^\d{6}$/);
    });

    await step('totp-sign-in-recovery-code', async () => {
      const { page } = s;
      const signInWithCode = async (code) => {
        await page.click('#topbar button:has-text("Sign out")');
        await s.waitForRoute('/login');
        await s.signIn(doctor.login, doctor.password, { expectRoute: null });
        await page.locator('#login-totp').waitFor();
        await page.fill('#login-totp', code);
        await page.click('#main form button[type="submit"]');
      };
      // Typed from paper, in capitals: a lost phone.
      await signInWithCode(recoveryCodes[0].toUpperCase());
      await s.waitForRoute('/home');
      await s.goto('/password');
      assert.match(await page.locator('#recovery-codes-left').innerText(), /^9 recovery codes left\.$/);

      // Each code signs in once.
      await signInWithCode(recoveryCodes[0]);
      await page.locator('#login-totp-error:not([hidden])').waitFor();
      assert.match(await page.locator('#login-totp-error').innerText(), /This code is wrong or has been used already/);
      // Neither six digits nor a recovery code: said beside the field, without asking the server.
      const tries = () => s.requests.filter((r) => r.url.endsWith('/api/v1/auth/login')).length;
      const before = tries();
      await page.fill('#login-totp', 'abc');
      await page.click('#main form button[type="submit"]');
      assert.match(await page.locator('#login-totp-error').innerText(), /or a recovery code of 10 letters and digits/);
      assert.equal(tries(), before);
      await page.fill('#login-totp', recoveryCodes[1]);
      await page.click('#main form button[type="submit"]');
      await s.waitForRoute('/home');

      // A new set with the app's code: shown once, the old codes no longer count.
      await s.goto('/password');
      assert.match(await page.locator('#recovery-codes-left').innerText(), /^8 recovery codes left\.$/);
      const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp/recovery-codes'));
      await page.fill('#recovery-renew-code', await authenticator.code());
      await page.click('form[data-form-id="recovery-renew"] button[type="submit"]');
      await s.waitForNotice(/New recovery codes are made; the old ones no longer work/);
      const fresh = await seeRecoveryCodes(s, await json(await answer, 200));
      assert.ok(fresh.every((c) => !recoveryCodes.includes(c)));
      await page.click('#recovery-codes-done');
      assert.match(await page.locator('#recovery-codes-left').innerText(), /^10 recovery codes left\.$/);
      const old = await apiContext();
      try {
        const refused = await old.post('/api/v1/auth/login', { data: { login: doctor.login, password: doctor.password, totp: recoveryCodes[2] } });
        assert.equal(refused.status(), 401);
        assert.equal((await refused.json()).error.code, 'invalid_totp');
      } finally {
        await old.dispose();
      }
      recoveryCodes = fresh;
    });

    await admin.step('totp-admin-reset', async () => {
      const { page } = admin;
      await admin.goto('/admin/users');
      await page.fill('#users-filter-q', doctor.login);
      const table = page.locator('#main table');
      assert.match(await table.locator('thead').innerText(), /2FA/);
      assert.match(await table.locator('tbody tr').innerText(), /\bOn\b/);
      await table.locator('tbody tr a').click();
      await admin.waitForRoute(/^\/admin\/users\/\d+$/);
      assert.match(await page.locator('#main .facts').innerText(), /Second factor\s+On/);
      await page.click('#user-totp-reset');
      const dialog = page.locator('dialog.dialog');
      await dialog.waitFor();
      assert.match(await dialog.innerText(), /Reset the second factor of Test /);
      await admin.screenshot('en-admin-user-totp-reset-confirm', { fullPage: false });
      await dialog.locator('.btn-danger').click();
      await admin.waitForNotice(new RegExp(`The second factor of ${doctor.login} has been reset`));
      assert.match(await page.locator('#main .facts').innerText(), /Second factor\s+Off/);
      assert.equal(await page.locator('#user-totp-reset').count(), 0, 'nothing left to reset');
      await admin.screenshot('en-admin-user-totp-reset');
      assert.equal((await userView(doctor.login)).totp_enabled, false);
      assert.deepEqual(await passwordAloneStatus(doctor), { status: 200, code: null });
    });

    await step('totp-turn-off', async () => {
      const { page } = s;
      // The page was left open on /password before the reset: come back to it (a route the
      // browser already shows is not drawn again), so that it reads the account anew.
      await s.goto('/home');
      await s.goto('/password');
      assert.match(await page.locator('#totp-status').innerText(), /Off/);
      authenticator = await startEnrolment(s);
      await confirmAndSeeRecoveryCodes(s, authenticator);
      await page.click('#recovery-codes-done');

      await page.fill('#totp-remove-code', authenticator.wrongCode());
      await page.click('form[data-form-id="totp-remove"] button[type="submit"]');
      await page.locator('#totp-remove-code-error:not([hidden])').waitFor();
      assert.match(await page.locator('#totp-remove-code-error').innerText(), /This code is wrong or has been used already/);
      assert.equal((await userView(doctor.login)).totp_enabled, true, 'a wrong code turns nothing off');

      await page.fill('#totp-remove-code', await authenticator.code());
      await page.click('form[data-form-id="totp-remove"] button[type="submit"]');
      await s.waitForNotice(/The second factor is off/);
      assert.match(await page.locator('#totp-status').innerText(), /Off/);
      assert.ok(await page.locator('#totp-start').isVisible());
      assert.equal((await userView(doctor.login)).totp_enabled, false);
    });
    s.assertClean();
  } finally {
    await s.close();
  }
});

/** The recovery codes on screen now. */
const codesOnScreen = (page) => page.locator('#recovery-codes li').allInnerTexts();

/** Switches the language with the header's button and waits for the account page in it. */
async function switchTo(s, lang) {
  await s.page.click(`#topbar button[lang="${lang}"]`);
  await s.page.locator('#main h1', { hasText: lang === 'ru' ? 'Пароль и второй фактор' : 'Password and second factor' }).waitFor();
  await s.waitForRoute('/password');
}

/** Every value of the tab's localStorage and sessionStorage, and of its IndexedDB databases, as text. */
function storedText(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const storage of [window.localStorage, window.sessionStorage]) {
      for (let i = 0; i < storage.length; i += 1) out.push(storage.key(i), storage.getItem(storage.key(i)));
    }
    for (const { name } of await indexedDB.databases()) {
      const db = await new Promise((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      for (const store of db.objectStoreNames) {
        const all = await new Promise((resolve, reject) => {
          const req = db.transaction(store).objectStore(store).getAll();
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error);
        });
        out.push(JSON.stringify(all));
      }
      db.close();
    }
    return out.join('\n');
  });
}

test('a language switch keeps the key being set up and the recovery codes on screen, in memory only; the codes still work', async () => {
  const nurse = await createUser(api, { institution_id: institution.id });
  await withSession(browser, { name: 'totp-language-switch' }, async (s) => {
    const { page } = s;
    await s.signIn(nurse.login, nurse.password);
    await s.goto('/password');

    // While setting up: the same key and QR code in Russian, and what was typed stays.
    const app = await startEnrolment(s);
    const secret = await page.locator('#totp-secret').innerText();
    // The modules drawn (the code's label is translated).
    const modules = () => page.evaluate(() => [...document.querySelectorAll('#totp-qr rect')].map((r) => r.outerHTML).join(''));
    const qr = await modules();
    await page.fill('#totp-confirm-code', '12');
    await switchTo(s, 'ru');
    assert.equal(await page.locator('#totp-secret').innerText(), secret, 'the same key');
    assert.ok((await modules()) === qr, 'the same QR code');
    assert.match(await page.getAttribute('#totp-qr', 'aria-label'), /QR-код/);
    assert.match(await page.locator('#totp').innerText(), /отсканируйте этот QR-код/);
    assert.equal(await page.inputValue('#totp-confirm-code'), '12');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('lang')), 'ru', 'focus stays on the switch');
    await switchTo(s, 'en');
    assert.equal(await page.locator('#totp-secret').innerText(), secret);

    // The codes, shown once: the same ones after a switch to Russian and back.
    const codes = await confirmAndSeeRecoveryCodes(s, app);
    await switchTo(s, 'ru');
    assert.deepEqual(await codesOnScreen(page), codes, 'the same codes in Russian');
    assert.match(await page.locator('#totp').innerText(), /Второй фактор включён/);
    assert.match(await page.locator('#recovery-codes-panel').innerText(), /Сохраните эти коды восстановления сейчас/);
    assert.equal(await page.locator('#recovery-codes-done').innerText(), 'Я сохранил(а) коды');
    assert.equal(await page.locator('#totp-status').count(), 0, 'only the codes until they are saved');
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('lang')), 'ru', 'focus stays on the switch');
    await s.screenshot('ru-account-totp-recovery-codes');
    // The download of the page drawn in Russian holds them too.
    const [file] = await Promise.all([page.waitForEvent('download'), page.click('#recovery-codes-download')]);
    const text = await readFile(await file.path(), 'utf8');
    assert.match(text, /^Коды восстановления palreg для /);
    for (const code of codes) assert.ok(text.includes(code), `${code} in the text file`);
    await switchTo(s, 'en');
    assert.deepEqual(await codesOnScreen(page), codes, 'the same codes back in English');
    assert.match(await page.locator('#totp').innerText(), /The second factor is on/);
    const stored = await storedText(page);
    for (const code of codes) assert.ok(!stored.includes(code), `${code} is kept in no storage`);

    // Saved: the status, and a switch does not bring the codes back.
    await page.click('#recovery-codes-done');
    assert.match(await page.locator('#totp-status').innerText(), /On\s+Signing in asks for a code/);
    await switchTo(s, 'ru');
    assert.equal(await page.locator('#recovery-codes').count(), 0, 'not shown again');
    assert.match(await page.locator('#totp-status').innerText(), /Включён/);

    // A new set, in Russian this time: the same codes after a switch to English.
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp/recovery-codes'));
    await page.fill('#recovery-renew-code', await app.code());
    await page.click('form[data-form-id="recovery-renew"] button[type="submit"]');
    const renewed = (await json(await answer, 200)).recovery_codes;
    await s.waitForNotice(/Созданы новые коды восстановления/);
    assert.deepEqual(await codesOnScreen(page), renewed);
    await switchTo(s, 'en');
    assert.deepEqual(await codesOnScreen(page), renewed, 'the same new codes in English');
    await s.waitForNotice(/New recovery codes are made; the old ones no longer work/);
    await page.click('#recovery-codes-done');
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^10 recovery codes left\.$/);

    // The codes kept across the switch are the ones that sign in.
    await page.click('#topbar button:has-text("Sign out")');
    await s.waitForRoute('/login');
    await s.signIn(nurse.login, nurse.password, { expectRoute: null });
    await page.locator('#login-totp').waitFor();
    await page.fill('#login-totp', renewed[3]);
    await page.click('#main form button[type="submit"]');
    await s.waitForRoute('/home');
    await s.goto('/password');
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^9 recovery codes left\.$/);
  });
});

/** Answers the page's next `GET /me` with the server's 401, as if the session had just ended. */
function expireOnNextMe(page) {
  return page.route('**/api/v1/me', (route) => route.fulfill({ status: 401, json: { error: { code: 'unauthenticated', message: 'sign in first' } } }), { times: 1 });
}

/** Signs `user` in on the sign-in page with the password, then `code` (the app's or a recovery code). */
async function signInWithCode(s, user, code, expectRoute) {
  const { page } = s;
  await s.signIn(user.login, user.password, { expectRoute: null });
  await page.locator('#login-totp').waitFor();
  await page.fill('#login-totp', code);
  await page.click('#main form button[type="submit"]');
  await s.waitForRoute(expectRoute);
}

/** Fails if any of `codes` is in the tab's storage (localStorage, sessionStorage, IndexedDB). */
async function assertNotStored(page, codes) {
  const stored = await storedText(page);
  for (const code of codes) assert.ok(!stored.includes(code), `${code} is kept in no storage`);
}

test('the session ends before the recovery codes are saved: the same user signing in again sees the same codes, kept in memory only', async () => {
  const pharmacist = await createUser(api, { institution_id: institution.id });
  await withSession(browser, { name: 'totp-codes-session-ended' }, async (s) => {
    const { page } = s;
    await s.signIn(pharmacist.login, pharmacist.password);
    await s.goto('/password');
    const app = await startEnrolment(s);

    // The session ends just as the second factor is turned on: the codes are in force, but the
    // page's next request (it reads the account again) finds the session gone, before they are
    // drawn.
    await expireOnNextMe(page);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/totp/confirm'));
    await page.fill('#totp-confirm-code', await app.code());
    await page.click('form[data-form-id="totp-confirm"] button[type="submit"]');
    const { recovery_codes: codes } = await json(await answer, 200);
    await s.waitForRoute('/login');
    assert.match(await page.locator('#main .notice').innerText(), /Your session has ended/);
    await assertNotStored(page, codes);
    await signInWithCode(s, pharmacist, await app.code(), '/password');
    await s.waitForNotice(/The second factor is on/);
    assert.deepEqual(await codesOnScreen(page), codes, 'the codes made before the session ended');
    assert.equal(await page.locator('#totp-status').count(), 0, 'only the codes until they are saved');
    assert.match(await page.locator('#recovery-codes-panel').innerText(), /Save these recovery codes now/);

    // Ended again, on the server (signed out in another window), while the codes are on screen:
    // the next request (the password form beside them) finds it gone.
    await endSessionElsewhere(s);
    await page.fill('#password-current_password', pharmacist.password);
    await page.fill('#password-new_password', 'another-horse-battery-2');
    await page.fill('#password-new_password_repeat', 'another-horse-battery-2');
    await page.click('form[data-form-id="password"] button[type="submit"]');
    await s.waitForRoute('/login');
    assert.match(await page.locator('#main .notice').innerText(), /Your session has ended/);
    await assertNotStored(page, codes);
    await signInWithCode(s, pharmacist, await app.code(), '/password');
    assert.deepEqual(await codesOnScreen(page), codes, 'the same codes again');
    assert.equal(await page.locator('#recovery-codes .recovery-code-spent').count(), 0, 'the app\'s code spends none of them');
    assert.equal(await page.inputValue('#password-current_password'), '', 'passwords are not kept');
    await assertNotStored(page, codes);
    await s.screenshot('en-account-totp-recovery-codes-after-sign-in');
    await page.click('#recovery-codes-done');
    assert.match(await page.locator('#totp-status').innerText(), /On\s+Signing in asks for a code/);
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^10 recovery codes left\.$/);

    // The codes shown again are the ones in force; once saved (or after a sign-out) they are
    // not shown again.
    await page.click('#topbar button:has-text("Sign out")');
    await s.waitForRoute('/login');
    await signInWithCode(s, pharmacist, codes[0], '/home');
    await s.goto('/password');
    assert.equal(await page.locator('#recovery-codes').count(), 0, 'not shown again');
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^9 recovery codes left\.$/);
  });
});

/**
 * Ends the session of `s` elsewhere while the account page shows the recovery codes; the page's
 * next request (the password form beside them) finds it gone and leads to the sign-in page.
 */
async function endSessionUnderCodes(s, user) {
  const { page } = s;
  await endSessionElsewhere(s);
  await page.fill('#password-current_password', user.password);
  await page.fill('#password-new_password', 'another-horse-battery-2');
  await page.fill('#password-new_password_repeat', 'another-horse-battery-2');
  await page.click('form[data-form-id="password"] button[type="submit"]');
  await s.waitForRoute('/login');
}

/** What the page hands to the clipboard as its copy button is clicked (the clipboard itself is stubbed). */
async function copiedText(page) {
  await page.evaluate(() => {
    window.copiedForTest = null;
    navigator.clipboard.writeText = async (text) => {
      window.copiedForTest = text;
    };
  });
  await page.click('#recovery-codes-copy');
  await page.locator('#recovery-codes-copied', { hasText: /copied/ }).waitFor();
  return page.evaluate(() => window.copiedForTest);
}

/** The text file the download button gives. */
async function downloadedText(page) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click('#recovery-codes-download')]);
  return readFile(await file.path(), 'utf8');
}

/**
 * The kept recovery codes as the page shows them now: each spent one marked (struck through,
 * labelled "used"), the others not; the copy and the download offer only the others.
 */
async function assertSpentMarked(page, codes, spent) {
  await page.locator('#recovery-codes').waitFor();
  assert.equal(await page.locator('#recovery-codes li').count(), codes.length, 'the whole list, spent ones too');
  for (const code of codes) {
    const item = page.locator('#recovery-codes li', { hasText: code });
    if (spent.includes(code)) {
      assert.equal(await item.getAttribute('class'), 'recovery-code-spent', `${code} is marked spent`);
      assert.equal(await item.locator('code s').innerText(), code, `${code} is struck through`);
      assert.equal(await item.innerText(), `${code} used`, `${code} says "used", in words read out too`);
    } else {
      assert.equal(await item.innerText(), code, `${code} is shown as usable`);
      assert.equal(await item.locator('s').count(), 0);
    }
  }
  const note = page.locator('#recovery-codes-spent');
  assert.match(await note.innerText(), spent.length === 1 ? /^The code struck through has been used to sign in and no longer works/ : new RegExp(`^The ${spent.length} codes struck through have been used to sign in`));
  for (const [what, text] of [['copy', await copiedText(page)], ['download', await downloadedText(page)]]) {
    for (const code of codes) {
      assert.equal(text.includes(code), !spent.includes(code), `${code} ${spent.includes(code) ? 'left out of' : 'in'} the ${what}`);
    }
  }
}

test('signing in again with one of the recovery codes kept across an ended session marks it used, and leaves it out of the copy and the download', async () => {
  const social = await createUser(api, { institution_id: institution.id });
  await withSession(browser, { name: 'totp-codes-spent-at-sign-in' }, async (s) => {
    const { page } = s;
    await s.signIn(social.login, social.password);
    await s.goto('/password');
    const app = await startEnrolment(s);
    const codes = await confirmAndSeeRecoveryCodes(s, app);
    assert.equal(await page.locator('#recovery-codes-spent').count(), 0, 'nothing spent yet');

    // The session ends under the codes; the user signs in again with one of them, typed from
    // paper (capitals, no dash): the server spends it.
    await endSessionUnderCodes(s, social);
    const first = codes[4];
    await signInWithCode(s, social, first.replace('-', '').toUpperCase(), '/password');
    await s.waitForNotice(/The second factor is on/);
    assert.match(await page.locator('#recovery-codes-panel').innerText(), /Save these recovery codes now/);
    assert.equal(await page.locator('#totp-status').count(), 0, 'only the codes until they are saved');
    await assertSpentMarked(page, codes, [first]);
    await s.screenshot('en-account-totp-recovery-codes-spent');
    await assertNotStored(page, codes);

    // The mark stays across a language switch, in Russian words.
    await switchTo(s, 'ru');
    assert.equal(await page.locator('#recovery-codes li', { hasText: first }).innerText(), `${first} использован`);
    assert.match(await page.locator('#recovery-codes-spent').innerText(), /^Зачёркнутый код уже использован для входа/);
    await s.screenshot('ru-account-totp-recovery-codes-spent');
    await switchTo(s, 'en');
    await assertSpentMarked(page, codes, [first]);

    // Ended again: a sign-in with the app's code spends none of them, and the mark stays.
    await endSessionUnderCodes(s, social);
    await signInWithCode(s, social, await app.code(), '/password');
    await assertSpentMarked(page, codes, [first]);

    // And again, with another of them: both are marked.
    await endSessionUnderCodes(s, social);
    const second = codes[7];
    await signInWithCode(s, social, second, '/password');
    await assertSpentMarked(page, codes, [first, second]);
    await assertNotStored(page, codes);

    // The server agrees: two spent, eight left.
    await page.click('#recovery-codes-done');
    assert.match(await page.locator('#totp-status').innerText(), /On\s+Signing in asks for a code/);
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^8 recovery codes left\.$/);
  });
});

test('recovery codes kept across an ended session are never shown to another user signing in, and are gone then', async () => {
  const first = await createUser(api, { institution_id: institution.id });
  const second = await createUser(api, { institution_id: institution.id });
  await withSession(browser, { name: 'totp-codes-other-user' }, async (s) => {
    const { page } = s;
    await s.signIn(first.login, first.password);
    await s.goto('/password');
    const app = await startEnrolment(s);
    const codes = await confirmAndSeeRecoveryCodes(s, app);

    // The session ended elsewhere; a language switch reads the account again and finds it gone.
    await endSessionElsewhere(s);
    await page.click('#topbar button[lang="ru"]');
    await s.waitForRoute('/login');
    assert.match(await page.locator('#main .notice').innerText(), /Сеанс работы завершён/);
    await page.click('#topbar button[lang="en"]');
    await page.locator('#main h1', { hasText: 'Sign in' }).waitFor();
    await s.waitForRoute('/login');

    // Someone else signs in at this computer: home, not the page the codes were on, and nowhere
    // the codes.
    await s.signIn(second.login, second.password, { expectRoute: '/home' });
    await s.goto('/password');
    assert.match(await page.locator('#totp-status').innerText(), /Off/);
    assert.equal(await page.locator('#recovery-codes').count(), 0);
    const seen = await page.locator('body').innerText();
    for (const code of codes) assert.ok(!seen.includes(code), `${code} is not shown to ${second.login}`);
    await assertNotStored(page, codes);
    await page.click('#topbar button:has-text("Sign out")');
    await s.waitForRoute('/login');

    // Gone for their owner too: the draft of the page was discarded as the other user signed in.
    await signInWithCode(s, first, await app.code(), '/home');
    await s.goto('/password');
    assert.equal(await page.locator('#recovery-codes').count(), 0, 'not shown again');
    assert.match(await page.locator('#totp-status').innerText(), /On\s+Signing in asks for a code/);
    assert.match(await page.locator('#recovery-codes-left').innerText(), /^10 recovery codes left\.$/);
  });
});

test('a role that requires a second factor sends its holders to enrolment, at sign-in and during a session', async () => {
  const strict = unique('e2e_2fa_');
  const later = unique('e2e_2fa_later_');

  await admin.step('totp-role-new', async () => {
    const { page } = admin;
    await admin.goto('/admin/roles/new');
    await page.fill('#role-new-name', strict);
    await page.getByRole('checkbox', { name: /^Patients/ }).check();
    assert.equal(await page.isChecked('#role-new-require_totp'), false, 'not required unless asked for');
    await page.check('#role-new-require_totp');
    await page.click('#main button[type="submit"]');
    await admin.waitForRoute('/admin/roles');
    const row = page.locator('#main table tbody tr', { hasText: strict });
    assert.match(await row.innerText(), /Required/);
    await admin.screenshot('en-admin-roles-require-totp');
    const roles = await json(await api.get('/api/v1/admin/roles'), 200);
    assert.equal(roles.find((r) => r.name === strict).require_totp, true);
  });

  // At sign-in: only enrolment is offered, whatever address is asked for.
  const nurse = await createUser(api, { roles: [strict], institution_id: institution.id });
  await withSession(browser, { name: 'totp-required-at-sign-in' }, async (s) => {
    const { page } = s;
    await s.signIn(nurse.login, nurse.password, { expectRoute: '/password' });
    assert.match(await page.locator('#main .notice').first().innerText(), /A role of your account requires a second factor/);
    const first = await page.evaluate(() => document.querySelector('#main section.card h2').textContent);
    assert.equal(first, 'Second factor (authenticator app)', 'the second factor comes first');
    assert.deepEqual(await page.locator('#nav a').allInnerTexts(), ['Password and second factor'], 'the menu offers enrolment only');
    await s.screenshot('en-account-totp-required');

    await page.goto('/#/patients');
    await s.waitForRoute('/password');
    await page.goto('/#/home');
    await s.waitForRoute('/password');
    assert.equal(s.requests.filter((r) => r.url.includes('/api/v1/patients') || r.url.includes('/api/v1/institutions')).length, 0, 'no page that would be refused asks');

    await page.click('#topbar button[lang="ru"]');
    await page.locator('#main h1', { hasText: 'Пароль и второй фактор' }).waitFor();
    assert.match(await page.locator('#main .notice').first().innerText(), /требует второго фактора/);
    await s.screenshot('ru-account-totp-required');
    await page.click('#topbar button[lang="en"]');
    await page.locator('#main h1', { hasText: 'Password and second factor' }).waitFor();

    const app = await startEnrolment(s);
    // The recovery codes first, then on to everything else.
    const codes = await confirmAndSeeRecoveryCodes(s, app, /The second factor is on, and palreg is open to you/);
    assert.match(await page.locator('#recovery-codes-done').innerText(), /I have saved them: continue/);
    // A language switch keeps them, still first on the page and still leading on.
    await switchTo(s, 'ru');
    assert.deepEqual(await codesOnScreen(page), codes);
    assert.match(await page.locator('#totp').innerText(), /Второй фактор включён, и palreg снова доступен/);
    assert.equal(await page.locator('#recovery-codes-done').innerText(), 'Я сохранил(а) коды: продолжить');
    assert.equal(await page.evaluate(() => document.querySelector('#main section.card').id), 'totp', 'the second factor still comes first');
    await switchTo(s, 'en');
    assert.deepEqual(await codesOnScreen(page), codes);
    await page.click('#recovery-codes-done');
    await s.waitForRoute('/home');
    assert.ok((await page.locator('#nav').innerText()).includes('Find a patient'), 'the whole menu is back');
    await s.goto('/patients');
    assert.equal(await s.heading(), 'Find a patient');

    // A role's requirement cannot be escaped by turning the second factor off.
    await s.goto('/password');
    assert.match(await page.locator('#totp').innerText(), /requires a second factor, so it cannot be turned off/);
    assert.equal(await page.locator('#totp-remove-code').count(), 0);
  });

  // During a session: an administrator makes a held role require it; the next refusal leads to
  // enrolment.
  const created = await json(await api.post('/api/v1/admin/roles', { data: { name: later, permissions: ['administration'] } }), 201);
  assert.equal(created.require_totp, false);
  const head = await createUser(api, { roles: [later], institution_id: institution.id });
  await withSession(browser, { name: 'totp-required-during-session' }, async (s) => {
    const { page } = s;
    await s.signIn(head.login, head.password);

    await admin.step('totp-role-edit', async () => {
      await admin.goto(`/admin/roles/${created.id}`);
      assert.equal(await admin.page.isChecked('#role-edit-require_totp'), false);
      await admin.page.check('#role-edit-require_totp');
      await admin.page.click('#main form button[type="submit"]');
      await admin.waitForRoute('/admin/roles');
      assert.match(await admin.page.locator('#main table tbody tr', { hasText: later }).innerText(), /Required/);
    });

    await page.click('#nav a:has-text("Users")');
    await s.waitForRoute('/password');
    assert.ok(s.apiRefusals.some((r) => /403/.test(r.text)), 'the server refused the users page');
    assert.match(await page.locator('#main .notice').first().innerText(), /A role of your account requires a second factor/);
    assert.deepEqual(await page.locator('#nav a').allInnerTexts(), ['Password and second factor']);
    await s.screenshot('en-account-totp-required-during-session');
  });
});
