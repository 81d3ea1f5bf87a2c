// A screenshot of every page, in English and in Russian, on a desktop and a phone-sized screen,
// with the checks every page must pass: one <h1>, a label on every field, captions and column
// headers on tables, no sideways scrolling of the page (Russian strings are longer), no console
// error, no CSP violation. Every page registered in the client must have a sample address here.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, Session, apiAs, createInstitution, launchBrowser } from './harness.mjs';

const BOOKS = ['institutions', 'districts', 'diagnoses', 'medicaments', 'care-forms', 'patient-statuses', 'needs'];
let browser;
let samples;

before(async () => {
  browser = await launchBrowser();
  const api = await apiAs();
  const institution = await createInstitution(api, { name: 'Republican Hospital named after V. A. Baranov' });
  const roles = await (await api.get('/api/v1/admin/roles')).json();
  const medicaments = await (await api.get('/api/v1/refs/medicaments')).json();
  const me = await (await api.get('/api/v1/me')).json();
  await api.dispose();
  const morphine = medicaments.find((m) => m.inn === 'morphine') ?? medicaments[0];
  // Registered route -> the addresses to show it at (a redirect names where it should land).
  samples = {
    '/login': [],
    '/home': ['/home'],
    '/password': ['/password'],
    '/admin/users': ['/admin/users'],
    '/admin/users/new': ['/admin/users/new'],
    '/admin/users/:id': [`/admin/users/${me.id}`],
    '/admin/roles': ['/admin/roles'],
    '/admin/roles/new': ['/admin/roles/new'],
    '/admin/roles/:id': [`/admin/roles/${roles.find((r) => r.name === 'user').id}`],
    '/admin/refs': [{ route: '/admin/refs', lands: '/admin/refs/institutions' }],
    '/admin/refs/:book': BOOKS.map((book) => `/admin/refs/${book}`),
    '/admin/refs/:book/new': ['/admin/refs/medicaments/new', '/admin/refs/needs/new'],
    '/admin/refs/:book/:id': [`/admin/refs/medicaments/${morphine.id}`, `/admin/refs/institutions/${institution.id}`],
    '/admin/audit': ['/admin/audit'],
    '/keys': ['/keys'],
    '/patients/new': ['/patients/new'],
    '/patients': ['/patients'],
    '/patients/:id': ['/patients/1'],
    '/prescriptions/new': ['/prescriptions/new'],
    '/patients/:id/prescriptions/new': ['/patients/1/prescriptions/new'],
    '/prescriptions': ['/prescriptions'],
    '/prescriptions/:id': ['/prescriptions/1'],
    '/reports/prescriptions': ['/reports/prescriptions'],
    '/reports/summary': ['/reports/summary'],
  };
});

after(async () => {
  await browser?.close();
});

/** A stable file name: the route pattern, with `:book` filled in and other ids left as names. */
function slug(pattern, route) {
  const actual = route.split('?')[0].split('/');
  return pattern
    .split('/')
    .filter(Boolean)
    .map((part, i) => (part === ':book' ? actual[i + 1] : part.replace(/^:/, '')))
    .join('-');
}

/** The structural checks every page must pass; returns a list of problems. */
function pageProblems(page, lang) {
  return page.evaluate((expectedLang) => {
    const problems = [];
    if (document.documentElement.lang !== expectedLang) problems.push(`<html lang="${document.documentElement.lang}">`);
    const headings = document.querySelectorAll('#main h1');
    if (headings.length !== 1) problems.push(`${headings.length} <h1> in main`);
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      const named = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
    }
    for (const button of document.querySelectorAll('button, a[href]')) {
      if (!button.textContent.trim() && !button.getAttribute('aria-label') && !button.querySelector('img[alt]:not([alt=""])')) {
        problems.push(`no text: ${button.outerHTML.slice(0, 80)}`);
      }
    }
    for (const table of document.querySelectorAll('table')) {
      if (!table.caption?.textContent.trim()) problems.push('a table without a caption');
      if (!table.querySelector('thead th[scope="col"]')) problems.push('a table without column headers');
    }
    if (document.querySelector('[style]')) problems.push('an inline style attribute');
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
      problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${window.innerWidth})`);
    }
    // Data such as audit action codes is shown in <code>; anything else looking like a.b.c is a key.
    const prose = document.body.cloneNode(true);
    prose.querySelectorAll('code, datalist, script').forEach((el) => el.remove());
    const keys = [...prose.textContent.matchAll(/\b[a-z_]+\.[a-z_]+\.[a-z_.]+\b/g)].map((m) => m[0]).filter((k) => !/\.(rs|js|json)$/.test(k));
    if (keys.length) problems.push(`message keys shown instead of text: ${keys.slice(0, 3).join(', ')}`);
    return problems;
  }, lang);
}

for (const [lang, viewport, suffix] of [
  ['en', { width: 1280, height: 860 }, ''],
  ['ru', { width: 1280, height: 860 }, ''],
  ['ru', { width: 390, height: 844 }, '-mobile'],
]) {
  test(`every page in ${lang === 'en' ? 'English' : 'Russian'}${suffix ? ' on a phone-sized screen' : ''}`, async () => {
    const s = await Session.open(browser, { lang, viewport });
    await s.context.addInitScript((l) => window.localStorage.setItem('palreg.lang', l), lang);
    const shot = (name) => s.screenshot(`${lang}${suffix}-${name}`);
    try {
      await s.goto('/login');
      assert.deepEqual(await pageProblems(s.page, lang), [], 'sign-in page');
      await shot('login');
      await s.signIn(ADMIN.login, ADMIN.password);

      const registered = await s.page.evaluate(async () => (await import('/js/router.js')).registeredPages());
      const unsampled = registered.map((p) => p.route).filter((route) => !(route in samples));
      assert.deepEqual(unsampled, [], 'add sample addresses for these pages to tests/e2e/pages.test.mjs');

      const pages = suffix ? ['/home', '/admin/users', '/admin/users/new', '/admin/refs/medicaments', '/admin/audit'] : null;
      for (const page of registered) {
        for (const sample of samples[page.route]) {
          const { route, lands } = typeof sample === 'string' ? { route: sample, lands: sample } : sample;
          if (pages && !pages.includes(route)) continue;
          await s.page.goto(`/#${route}`);
          await s.waitForRoute(lands);
          if (lands === route) assert.equal(await s.page.locator('#main').getAttribute('data-page'), page.route, route);
          assert.deepEqual(await pageProblems(s.page, lang), [], route);
          await s.page.evaluate(() => document.activeElement?.blur());
          await shot(slug(page.route, route));
        }
      }
      s.assertClean();
    } catch (err) {
      await s.screenshot(`failure-pages-${lang}${suffix}`).catch(() => {});
      throw err;
    } finally {
      await s.close();
    }
  });
}
