// Message catalogs (web/i18n/<lang>.json) and formatting. Every visible string comes from here.
//
// A catalog is nested JSON; keys are dotted paths (`users.list.title`). A value is a string with
// `{name}` placeholders, or a plural object `{"one": …, "few": …, "many": …, "other": …}` chosen
// by `params.count` with the language's plural rules.

export const LANGUAGES = [
  { code: 'en', nativeName: 'English' },
  { code: 'ru', nativeName: 'Русский' },
];
const STORAGE_KEY = 'palreg.lang';
const FALLBACK = 'en';

const catalogs = new Map();
let lang = FALLBACK;
const reported = new Set();

async function load(code) {
  if (!catalogs.has(code)) {
    const response = await fetch(new URL(`../i18n/${code}.json`, import.meta.url), {
      credentials: 'same-origin',
    });
    if (!response.ok) throw new Error(`cannot load the ${code} message catalog (${response.status})`);
    catalogs.set(code, await response.json());
  }
  return catalogs.get(code);
}

function preferred() {
  const stored = safeStorage()?.getItem(STORAGE_KEY);
  if (LANGUAGES.some((l) => l.code === stored)) return stored;
  const browser = (navigator.language || '').slice(0, 2).toLowerCase();
  return LANGUAGES.some((l) => l.code === browser) ? browser : FALLBACK;
}

function safeStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/** Loads the preferred language (stored choice, else the browser's) and the fallback. */
export async function initI18n() {
  await load(FALLBACK);
  const wanted = preferred();
  try {
    await load(wanted);
    lang = wanted;
  } catch (err) {
    console.warn(err.message);
    lang = FALLBACK;
  }
  document.documentElement.lang = lang;
}

export function getLang() {
  return lang;
}

/** Switches the language, remembers the choice, and announces a `palreg:langchange` event. */
export async function setLang(code) {
  if (!LANGUAGES.some((l) => l.code === code) || code === lang) return;
  await load(code);
  lang = code;
  safeStorage()?.setItem(STORAGE_KEY, code);
  document.documentElement.lang = code;
  window.dispatchEvent(new CustomEvent('palreg:langchange', { detail: { lang: code } }));
}

function lookup(catalog, key) {
  let node = catalog;
  for (const part of key.split('.')) {
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

/** Whether a key exists in the current language or the fallback. */
export function has(key) {
  return lookup(catalogs.get(lang) ?? {}, key) !== undefined || lookup(catalogs.get(FALLBACK) ?? {}, key) !== undefined;
}

/** The message for `key`, with `{placeholders}` filled from `params`. */
export function t(key, params = {}) {
  let value = lookup(catalogs.get(lang) ?? {}, key);
  let valueLang = lang;
  if (value === undefined) {
    value = lookup(catalogs.get(FALLBACK) ?? {}, key);
    valueLang = FALLBACK;
  }
  if (value === undefined) {
    if (!reported.has(key)) {
      reported.add(key);
      // An error, so that the end-to-end tests catch a message missing from the catalogs.
      console.error(`i18n: no message for "${key}"`);
    }
    return key;
  }
  if (typeof value === 'object') {
    const category = new Intl.PluralRules(valueLang).select(Number(params.count ?? 0));
    value = value[category] ?? value.other ?? '';
  }
  return String(value).replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? formatValue(params[name]) : whole,
  );
}

function formatValue(value) {
  return typeof value === 'number' ? new Intl.NumberFormat(lang).format(value) : String(value);
}

/** A server timestamp (UTC, without zone, e.g. `2026-11-28T05:04:00.123`) in local time. */
export function formatDateTime(utc) {
  if (!utc) return '';
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(utc) ? utc : `${utc}Z`);
  if (Number.isNaN(date.getTime())) return utc;
  return new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'medium' }).format(date);
}

/** A server timestamp in local time as `{date, time}` strings. */
export function formatDateAndTime(utc) {
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(utc ?? '') ? utc : `${utc}Z`);
  if (!utc || Number.isNaN(date.getTime())) return { date: utc ?? '', time: '' };
  return {
    date: new Intl.DateTimeFormat(lang, { dateStyle: 'short' }).format(date),
    time: new Intl.DateTimeFormat(lang, { timeStyle: 'medium' }).format(date),
  };
}

/** Sorts strings the way the current language does. */
export function compare(a, b) {
  return String(a ?? '').localeCompare(String(b ?? ''), lang, { sensitivity: 'base' });
}
