// Shared pieces of the end-to-end tests: the browser (Debian Chromium through playwright-core,
// never a downloaded browser), a session per test with everything it observed (console errors,
// CSP violations, page errors, request bodies), screenshots, and API helpers to arrange data.
//
// scripts/test-e2e.sh starts the server and sets PALREG_E2E_URL and PALREG_E2E_ADMIN_PASSWORD.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium, request as playwrightRequest } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BASE_URL = process.env.PALREG_E2E_URL ?? '';
export const ADMIN = { login: 'admin', password: process.env.PALREG_E2E_ADMIN_PASSWORD ?? '' };
export const SCREENSHOTS = join(ROOT, 'test-artifacts', 'screenshots');
const CHROMIUM = process.env.PALREG_E2E_CHROMIUM ?? '/usr/bin/chromium';

if (!BASE_URL || !ADMIN.password) {
  throw new Error('run the end-to-end tests with scripts/test-e2e.sh (PALREG_E2E_URL and PALREG_E2E_ADMIN_PASSWORD are not set)');
}

/** A password that meets the server's policy. */
export const PASSWORD = 'correct-horse-battery-1';

/** A fresh name for test data: `prefix` + a random suffix (lower case, login-safe). */
export function unique(prefix) {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/** Launches headless Debian Chromium. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--ignore-certificate-errors',
    ],
  });
}

const API_REFUSAL = /^Failed to load resource: the server responded with a status of 4\d\d/;

/**
 * One browser context and page, with what it saw:
 * - `consoleErrors`: console errors and warnings of the page, except the browser's own note about an
 *   API answer with a 4xx status (the client handles those by design; see `apiRefusals`);
 * - `cspViolations`: `securitypolicyviolation` events;
 * - `pageErrors`: uncaught exceptions;
 * - `requests`: every request the browser sent, with its body (`{method, url, body}`).
 */
export class Session {
  constructor(context, page) {
    this.context = context;
    this.page = page;
    this.consoleErrors = [];
    this.cspViolations = [];
    this.pageErrors = [];
    this.apiRefusals = [];
    this.requests = [];
  }

  static async open(browser, { lang = 'en', viewport = { width: 1280, height: 860 } } = {}) {
    const context = await browser.newContext({
      baseURL: BASE_URL,
      ignoreHTTPSErrors: true,
      viewport,
      locale: lang === 'ru' ? 'ru-RU' : 'en-US',
      timezoneId: 'Europe/Moscow',
    });
    // Runs before the page's own scripts and outside its CSP: reports violations to the test.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'} (${event.sourceFile}:${event.lineNumber})`);
      });
    });
    const page = await context.newPage();
    const session = new Session(context, page);
    session.watch(page);
    context.on('request', (request) => {
      session.requests.push({ method: request.method(), url: request.url(), body: request.postData() ?? '' });
    });
    return session;
  }

  /** Records what `page` (a tab of this session's context) reports. */
  watch(page) {
    const session = this;
    page.setDefaultTimeout(10_000);
    page.on('console', (message) => {
      const type = message.type();
      if (type !== 'error' && type !== 'warning') return;
      const text = message.text();
      const url = message.location()?.url ?? '';
      if (type === 'error' && API_REFUSAL.test(text) && new URL(url, BASE_URL).pathname.startsWith('/api/')) {
        session.apiRefusals.push({ text, url });
        return;
      }
      if (text.startsWith('CSP violation') || text.includes('Content Security Policy')) session.cspViolations.push(text);
      session.consoleErrors.push(`${type}: ${text} (${url})`);
    });
    page.on('pageerror', (error) => session.pageErrors.push(String(error?.stack ?? error)));
  }

  /**
   * Closes the tab (without its beforeunload handlers) and opens a new one in the same browser
   * context: cookies and IndexedDB stay, the page's memory (unlocked keys) is gone.
   */
  async reopenTab() {
    await this.page.close();
    this.page = await this.context.newPage();
    this.watch(this.page);
    return this.page;
  }

  /** Opens a route (`/admin/users`) and waits until its page has rendered. */
  async goto(route) {
    await this.page.goto(`/#${route}`);
    await this.waitForRoute(route);
  }

  /** Waits until the client shows `route` (a route string, or a RegExp), fully rendered. */
  async waitForRoute(route, { timeout = 10_000 } = {}) {
    const pattern = route instanceof RegExp ? { source: route.source, flags: route.flags } : null;
    await this.page.waitForFunction(
      ({ route: wanted, pattern: re }) => {
        const main = document.getElementById('main');
        if (!main || main.hasAttribute('aria-busy') || !main.dataset.route) return false;
        return re ? new RegExp(re.source, re.flags).test(main.dataset.route) : main.dataset.route === wanted;
      },
      { route: pattern ? null : route, pattern },
      { timeout },
    );
  }

  /** Signs in through the sign-in page (from wherever the browser is). */
  async signIn(login, password, { expectRoute = '/home' } = {}) {
    if (!(await this.page.locator('#login-login').count())) await this.goto('/login');
    await this.page.fill('#login-login', login);
    await this.page.fill('#login-password', password);
    await this.page.click('#main form button[type="submit"]');
    if (expectRoute) await this.waitForRoute(expectRoute);
  }

  /** Waits for a message box on the page whose text matches `pattern`; returns its text. */
  async waitForNotice(pattern) {
    const box = this.page.locator('#main .notice', { hasText: pattern }).first();
    await box.waitFor();
    return box.innerText();
  }

  /** Runs `fn`; on failure saves a screenshot `failure-<name>` first. */
  async step(name, fn) {
    try {
      return await fn();
    } catch (err) {
      await this.screenshot(`failure-${name}`).catch(() => {});
      throw err;
    }
  }

  /** The text of the page's <h1>. */
  heading() {
    return this.page.locator('#main h1').innerText();
  }

  /** Saves a screenshot (the full page, unless `fullPage: false`) as test-artifacts/screenshots/<name>.png. */
  async screenshot(name, { fullPage = true } = {}) {
    await mkdir(SCREENSHOTS, { recursive: true });
    await this.page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });
  }

  /** The bodies of the requests sent so far (POST/PUT/DELETE…), with method and URL. */
  requestBodies() {
    return this.requests.filter((r) => r.body);
  }

  /**
   * Fails if any request the browser sent carried one of `needles` in its URL or body: the proof
   * that patient-identifying data left the browser only encrypted.
   */
  assertNothingSent(...needles) {
    for (const needle of needles) {
      const leaks = this.requests.filter((r) => r.url.includes(needle) || r.url.includes(encodeURIComponent(needle)) || r.body.includes(needle));
      assert.deepEqual(leaks, [], `"${needle}" left the browser in clear`);
    }
  }

  /** Fails on any console error or warning, CSP violation or uncaught exception. */
  assertClean() {
    assert.deepEqual(this.cspViolations, [], 'CSP violations');
    assert.deepEqual(this.pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(this.consoleErrors, [], 'console errors or warnings');
  }

  async close() {
    await this.context.close();
  }
}

/**
 * A Playwright API context on the test server. Each request goes on a connection of its own
 * (`Connection: close`): a kept-alive connection that sat idle up to the server's keep-alive
 * timeout can be closed by the server just as the next request is written on it, and unlike a
 * browser, Playwright does not retry such a request (CI once saw `socket hang up`).
 */
export function apiContext(headers = {}) {
  return playwrightRequest.newContext({
    baseURL: BASE_URL,
    ignoreHTTPSErrors: true,
    extraHTTPHeaders: { Connection: 'close', ...headers },
  });
}

/**
 * Ends the session of `session` on the server, as signing out in another window of it does: the
 * tab still holds the (now dead) cookie, and its next request gets 401.
 */
export async function endSessionElsewhere(session) {
  const cookie = (await session.context.cookies()).find((c) => c.name === 'palreg_session');
  assert.ok(cookie, 'the browser holds the session cookie');
  const elsewhere = await apiContext({ Cookie: `palreg_session=${cookie.value}` });
  try {
    assert.equal((await elsewhere.post('/api/v1/auth/logout')).status(), 204);
  } finally {
    await elsewhere.dispose();
  }
}

/** An API client signed in as `login` (default: the administrator), for arranging data. */
export async function apiAs(login = ADMIN.login, password = ADMIN.password) {
  const api = await apiContext();
  const response = await api.post('/api/v1/auth/login', { data: { login, password } });
  assert.equal(response.status(), 200, `sign-in of ${login}: ${await response.text()}`);
  const { access_token: token } = await response.json();
  await api.dispose();
  return apiContext({ Authorization: `Bearer ${token}` });
}

async function expectJson(response, status) {
  const text = await response.text();
  assert.equal(response.status(), status, `${response.url()}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Adds a district (reference book) through the API. */
export async function createDistrict(api, { code = unique('district-'), name = `Test district ${code}` } = {}) {
  return expectJson(await api.post('/api/v1/refs/districts', { data: { code, name, name_ru: `Район ${code}` } }), 201);
}

/** Adds an institution (reference book) through the API. */
export async function createInstitution(api, { code = unique('inst-'), name = `Test hospital ${code}` } = {}) {
  return expectJson(await api.post('/api/v1/refs/institutions', { data: { code, name, name_ru: `Больница ${code}` } }), 201);
}

/** Registers a user through the API. */
export async function createUser(api, { login = unique('u'), full_name = `Test ${login}`, roles = ['user'], institution_id = null, password = PASSWORD } = {}) {
  const user = await expectJson(await api.post('/api/v1/admin/users', { data: { login, full_name, password, roles, institution_id } }), 201);
  return { ...user, password };
}

/** Runs `fn(session)` in a fresh session and closes it; asserts the page stayed clean. */
export async function withSession(browser, options, fn) {
  const session = await Session.open(browser, options);
  try {
    await fn(session);
    session.assertClean();
  } catch (err) {
    await session.screenshot(`failure-${options?.name ?? unique('')}`).catch(() => {});
    throw err;
  } finally {
    await session.close();
  }
}
