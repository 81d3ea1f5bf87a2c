// English and Russian: every message from the catalogs, the switch changes the whole UI at once,
// is remembered, sets <html lang>, and keeps what was typed into a form.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN, ROOT, launchBrowser, withSession } from './harness.mjs';

const catalog = async (lang) => JSON.parse(await readFile(join(ROOT, 'web', 'i18n', `${lang}.json`), 'utf8'));
const isPlural = (v) => v && typeof v === 'object' && 'other' in v;

function flatten(node, prefix = '') {
  return Object.entries(node).flatMap(([k, v]) => (v && typeof v === 'object' && !isPlural(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]));
}

async function sources(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.js')) out.push([path, await readFile(path, 'utf8')]);
  }
  return out;
}

/** Error codes of the API the current pages call; a page that calls more adds its codes here. */
const SERVER_CODES = [
  'unauthenticated', 'invalid_credentials', 'account_locked', 'rate_limited', 'forbidden', 'not_found',
  'wrong_password', 'weak_password', 'invalid_login', 'invalid_full_name', 'login_taken', 'role_required',
  'unknown_role', 'unknown_institution', 'use_delete', 'cannot_deregister_self', 'admin_role_locked',
  'role_exists', 'in_use', 'invalid_description', 'unknown_permission', 'code_taken', 'invalid_code',
  'invalid_name', 'invalid_icd10', 'invalid_block', 'invalid_atc', 'invalid_kind', 'unknown_reference',
  'invalid_body', 'invalid_json', 'invalid_query', 'invalid_path', 'unsupported_content_type',
  'payload_too_large', 'internal_error',
  // Keys and patients (pages keys.js, patients*.js).
  'stale_version', 'pseudonym_taken', 'no_institution_key', 'stale_key_version', 'wrong_key_version',
  'not_a_key_holder', 'no_public_key', 'invalid_blind_index', 'retired_blind_index', 'blind_index_too_long', 'invalid_pseudonym', 'no_institution',
  'invalid_sex', 'invalid_birth_year', 'invalid_dates', 'invalid_status', 'invalid_needs',
  'inactive_diagnosis', 'inactive_care_form', 'unknown_status', 'invalid_limit', 'version_mismatch',
  'link_required', 'unexpected_link', 'already_linked',
  // Prescriptions and reports (pages prescriptions.js, reports.js).
  'invalid_dose', 'invalid_quantity', 'invalid_route', 'invalid_field', 'unknown_medicament',
  'inactive_medicament', 'unknown_patient', 'patient_not_registered', 'not_active', 'reason_required',
  'invalid_lang', 'report_too_large', 'invalid_report', 'invalid_institutions', 'invalid_sha256',
  // The second factor (pages login.js, password.js, admin-users.js; every page: a role's requirement).
  'totp_required', 'invalid_totp', 'totp_enrolment_required', 'totp_already_enabled', 'no_totp_enrolment',
  'totp_required_by_role',
];

describe('message catalogs', () => {
  test('English and Russian have the same messages, with the plural forms each language needs', async () => {
    const en = new Map(flatten(await catalog('en')));
    const ru = new Map(flatten(await catalog('ru')));
    assert.deepEqual([...ru.keys()].filter((k) => !en.has(k)), [], 'only in ru.json');
    assert.deepEqual([...en.keys()].filter((k) => !ru.has(k)), [], 'only in en.json');
    for (const [key, value] of ru) {
      // A Russian plural needs all its forms (a phrasing without agreement may use none).
      if (isPlural(value)) {
        for (const form of ['one', 'few', 'many', 'other']) assert.ok(value[form], `${key}: Russian needs the "${form}" form`);
      }
      if (isPlural(en.get(key))) for (const form of ['one', 'other']) assert.ok(en.get(key)[form], `${key}: English needs "${form}"`);
      const placeholders = (v) => [...JSON.stringify(v).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      assert.deepEqual([...new Set(placeholders(value))], [...new Set(placeholders(en.get(key)))], `${key}: placeholders differ`);
      if (!isPlural(value)) assert.notEqual(String(value).trim(), '', `${key} is empty`);
    }
  });

  test('every message key the code names exists', async () => {
    const en = new Map(flatten(await catalog('en')));
    const missing = [];
    for (const [path, text] of await sources(join(ROOT, 'web', 'js'))) {
      const keys = [
        ...[...text.matchAll(/\bt\(\s*'([a-z0-9_.-]+)'/g)].map((m) => m[1]),
        ...[...text.matchAll(/(?:titleKey|labelKey|descriptionKey):\s*'([a-z0-9_.-]+)'/g)].map((m) => m[1]),
      ];
      for (const key of keys) {
        if (!en.has(key)) missing.push(`${path.slice(ROOT.length + 1)}: ${key}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  test('every error code of the API the pages use has a message', async () => {
    for (const lang of ['en', 'ru']) {
      const messages = (await catalog(lang)).errors;
      assert.deepEqual(SERVER_CODES.filter((code) => !messages[code]), [], `${lang}: errors.<code> missing`);
    }
  });
});

describe('switching the language', () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('Русский: the whole interface changes, <html lang> follows, and the choice is remembered', async () => {
    await withSession(browser, { name: 'switch-ru' }, async (s) => {
      await s.signIn(ADMIN.login, ADMIN.password);
      assert.equal(await s.page.getAttribute('html', 'lang'), 'en');
      await s.page.click('#topbar button[lang="ru"]');
      await s.page.locator('#main h1', { hasText: 'Главная' }).waitFor();
      assert.equal(await s.page.getAttribute('html', 'lang'), 'ru');
      assert.equal(await s.page.getAttribute('#topbar button[lang="ru"]', 'aria-pressed'), 'true');
      assert.equal(await s.page.evaluate(() => document.activeElement.getAttribute('lang')), 'ru', 'focus stays on the switch');
      const nav = await s.page.locator('#nav').innerText();
      for (const text of ['Главная', 'АДМИНИСТРИРОВАНИЕ', 'Пользователи', 'Роли и права доступа', 'Справочники', 'Журнал аудита', 'Пароль и второй фактор']) {
        assert.ok(nav.includes(text), `menu: ${text}`);
      }
      assert.match(await s.page.locator('#topbar').innerText(), /Выйти/);
      assert.match(await s.page.title(), /^Главная · palreg$/);
      assert.doesNotMatch(await s.page.locator('body').innerText(), /\b(Home|Users|Sign out|Your account)\b/, 'no English left');

      await s.page.reload();
      await s.waitForRoute('/home');
      assert.equal(await s.heading(), 'Главная');
      assert.equal(await s.page.getAttribute('html', 'lang'), 'ru');
    });
  });

  test('switching keeps what was typed into a form', async () => {
    await withSession(browser, { name: 'switch-keeps-form' }, async (s) => {
      await s.signIn(ADMIN.login, ADMIN.password);
      await s.goto('/admin/users/new');
      await s.page.fill('#user-new-login', 'half.typed');
      await s.page.fill('#user-new-password', 'typed-password-1');
      await s.page.click('#topbar button[lang="ru"]');
      await s.page.locator('#main h1', { hasText: 'Регистрация пользователя' }).waitFor();
      assert.equal(await s.page.inputValue('#user-new-login'), 'half.typed');
      assert.equal(await s.page.inputValue('#user-new-password'), 'typed-password-1');
      await s.page.click('#main button[type="submit"]');
      assert.match(await s.page.locator('#user-new-full_name-error').innerText(), /Заполните это поле/);
      await s.page.click('#topbar button[lang="en"]');
      await s.page.locator('#main h1', { hasText: 'Register a user' }).waitFor();
      assert.equal(await s.page.inputValue('#user-new-login'), 'half.typed');
    });
  });

  test('sign-in messages in Russian', async () => {
    await withSession(browser, { name: 'ru-login' }, async (s) => {
      await s.goto('/login');
      await s.page.click('#topbar button[lang="ru"]');
      await s.page.locator('#main h1', { hasText: 'Вход в систему' }).waitFor();
      await s.signIn(ADMIN.login, 'wrong-password-ru', { expectRoute: null });
      const alert = s.page.locator('#main [role="alert"]');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Неверный логин или пароль/);
      await s.screenshot('ru-login-wrong-password');
    });
  });
});
