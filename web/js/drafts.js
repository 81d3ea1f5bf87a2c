// Keeps a half-filled form across a sign-in: when the session ends while a form is open, the
// values of every `form[data-form-id]` on the page are saved, the sign-in page is shown, and the
// same page gets them back after sign-in (router.js applies them after the page has rendered).
//
// Where values go:
// - ordinary fields: sessionStorage (this tab only; survives a reload);
// - fields inside or marked `[data-sensitive]` (patient-identifying data in clear): this module's
//   memory only, never any storage, so they survive a re-sign-in in the same tab and nothing else;
// - password and file fields, and `[data-no-draft]`: nowhere.
// Beside the forms, a page may keep part of its state (ctx.state, router.js `keepAcrossSignIn`:
// the recovery codes on screen, pages/password.js) in the same memory, for its first render
// after the sign-in.
// A draft belongs to the user who typed it: another user signing in never sees it.

const STORAGE_KEY = 'palreg.draft';
/**
 * route -> { userId, forms: { formId: { field: value } }, state } for what stays in memory: the
 * sensitive values, and the page's state kept across the sign-in (or null).
 */
const sensitiveDrafts = new Map();

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

function draftable(el, includePasswords) {
  if (!el.name || el.disabled || el.closest('[data-no-draft]')) return false;
  const type = (el.type || '').toLowerCase();
  if (type === 'password') return includePasswords;
  return !['file', 'submit', 'button', 'reset', 'image'].includes(type);
}

function isSensitive(el) {
  return Boolean(el.closest('[data-sensitive]'));
}

function readValue(form, el) {
  const type = (el.type || '').toLowerCase();
  if (type === 'checkbox') {
    const group = form.querySelectorAll(`input[type="checkbox"][name="${CSS.escape(el.name)}"]`);
    if (group.length > 1) return [...group].filter((c) => c.checked).map((c) => c.value);
    return el.checked;
  }
  if (type === 'radio') {
    const checked = form.querySelector(`input[type="radio"][name="${CSS.escape(el.name)}"]:checked`);
    return checked ? checked.value : null;
  }
  if (el.tagName === 'SELECT' && el.multiple) return [...el.selectedOptions].map((o) => o.value);
  return el.value;
}

/**
 * Reads every named field of every `form[data-form-id]` under `root`:
 * `{ plain: {formId: {name: value}}, sensitive: {formId: {name: value}} }`.
 * With `includePasswords`, password fields are read too (for an in-memory re-render only).
 */
export function captureForms(root, { includePasswords = false } = {}) {
  const plain = {};
  const sensitive = {};
  for (const form of root.querySelectorAll('form[data-form-id]')) {
    const id = form.dataset.formId;
    for (const el of form.elements) {
      if (!draftable(el, includePasswords)) continue;
      const isPassword = (el.type || '').toLowerCase() === 'password';
      const bucket = isSensitive(el) || isPassword ? sensitive : plain;
      bucket[id] ??= {};
      if (!(el.name in bucket[id])) bucket[id][el.name] = readValue(form, el);
    }
  }
  return { plain, sensitive };
}

function writeValue(form, name, value) {
  const fields = [...form.elements].filter((el) => el.name === name && !el.disabled);
  let count = 0;
  for (const el of fields) {
    let changed = false;
    const type = (el.type || '').toLowerCase();
    if (type === 'checkbox') {
      const next = Array.isArray(value) ? value.includes(el.value) : Boolean(value);
      if (el.checked !== next) {
        el.checked = next;
        changed = true;
      }
    } else if (type === 'radio') {
      changed = el.checked !== (el.value === value);
      el.checked = el.value === value;
    } else if (el.tagName === 'SELECT' && el.multiple && Array.isArray(value)) {
      for (const option of el.options) option.selected = value.includes(option.value);
      changed = true;
    } else if (el.value !== value && typeof value === 'string') {
      el.value = value;
      changed = true;
    }
    if (changed) {
      count += 1;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }
  }
  return count > 0;
}

/** Writes captured values back into the forms under `root`; returns how many fields changed. */
export function applyForms(root, captured) {
  let count = 0;
  for (const bucket of [captured.plain ?? {}, captured.sensitive ?? {}]) {
    for (const [formId, values] of Object.entries(bucket)) {
      const form = root.querySelector(`form[data-form-id="${CSS.escape(formId)}"]`);
      if (!form) continue;
      for (const [name, value] of Object.entries(values)) {
        if (writeValue(form, name, value)) count += 1;
      }
    }
  }
  return count;
}

function hasValues(bucket) {
  return Object.values(bucket).some((values) => Object.keys(values).length > 0);
}

/**
 * Saves the forms under `root` as the draft of `route` for `userId` (passwords excepted), with
 * `state`, what the page keeps of its state (memory only), if any.
 */
export function saveDraft(route, userId, root, state = null) {
  discardAll();
  const { plain, sensitive } = captureForms(root);
  if (hasValues(sensitive) || state) sensitiveDrafts.set(route, { userId, forms: sensitive, state });
  if (hasValues(plain)) {
    try {
      storage()?.setItem(STORAGE_KEY, JSON.stringify({ route, userId, forms: plain }));
    } catch {
      // A full or disabled storage only loses the convenience.
    }
  }
}

/** The route a draft waits on, if it belongs to `userId`; drafts of anyone else are discarded. */
export function draftRouteFor(userId) {
  const stored = readStored();
  const route = stored?.route ?? [...sensitiveDrafts.keys()][0] ?? null;
  const owner = stored?.userId ?? sensitiveDrafts.get(route)?.userId;
  if (route === null) return null;
  if (owner !== userId) {
    discardAll();
    return null;
  }
  return route;
}

function readStored() {
  try {
    const raw = storage()?.getItem(STORAGE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/**
 * Takes (and forgets) the page state kept with the draft of `route`, if `userId` left it; else
 * null. The router asks before the page renders (it becomes ctx.state), the forms come after.
 */
export function takeDraftState(route, userId) {
  const memory = sensitiveDrafts.get(route);
  const state = memory?.userId === userId ? memory.state : null;
  if (memory) memory.state = null;
  return state ?? null;
}

/**
 * Takes (and forgets) the draft of `route` if `userId` wrote it:
 * `{plain, sensitive}` or `null`.
 */
export function takeDraft(route, userId) {
  const stored = readStored();
  const memory = sensitiveDrafts.get(route);
  const plain = stored?.route === route && stored.userId === userId ? stored.forms : null;
  const sensitive = memory?.userId === userId ? memory.forms : null;
  if (stored?.route === route) storage()?.removeItem(STORAGE_KEY);
  sensitiveDrafts.delete(route);
  if (!plain && !sensitive) return null;
  return { plain: plain ?? {}, sensitive: sensitive ?? {} };
}

/** Forgets every draft (sign-out, another user signing in). */
export function discardAll() {
  sensitiveDrafts.clear();
  try {
    storage()?.removeItem(STORAGE_KEY);
  } catch {
    // nothing to forget
  }
}
