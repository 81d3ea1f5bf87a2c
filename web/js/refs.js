// Reference books (districts, institutions, diagnoses…): loading with a small cache, and the
// entry's name in the current language. Forms of later pages take their options from here.

import { get } from './api.js';
import { getLang, t, compare } from './i18n.js';

export const BOOKS = ['districts', 'institutions', 'diagnoses', 'medicaments', 'care-forms', 'patient-statuses', 'needs'];

const cache = new Map();

/** The entries of `book` (all, or only active ones: what a form should offer). */
export async function loadBook(book, { activeOnly = false, signal } = {}) {
  const key = `${book}:${activeOnly}`;
  if (!cache.has(key)) {
    const promise = get(`/refs/${encodeURIComponent(book)}`, { query: { active_only: activeOnly || null }, signal });
    cache.set(key, promise);
    promise.catch(() => cache.delete(key));
  }
  return cache.get(key);
}

/** Forgets cached entries of `book` after a change (or of every book). */
export function invalidateBook(book = null) {
  for (const key of [...cache.keys()]) if (!book || key.startsWith(`${book}:`)) cache.delete(key);
}

/** The entry's name in the current language (Russian falls back to the English name). */
export function refName(entry) {
  if (!entry) return '';
  return getLang() === 'ru' && entry.name_ru ? entry.name_ru : entry.name;
}

/**
 * Options for a <select>: active entries by name, plus `keep` (the current value) if inactive,
 * or every entry with `all` (a search filter: patients keep entries that went out of use).
 */
export function refOptions(entries, { keep = null, empty = null, all = false } = {}) {
  const options = entries
    .filter((e) => all || e.active || e.id === keep)
    .sort((a, b) => compare(refName(a), refName(b)))
    .map((e) => ({ value: String(e.id), label: e.active ? refName(e) : `${refName(e)} (${t('refs.inactive_suffix')})` }));
  return empty === null ? options : [{ value: '', label: empty }, ...options];
}
