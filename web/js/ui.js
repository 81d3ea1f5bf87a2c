// Shared pieces of pages: headings, notices, the live region, flash messages, confirmation
// dialogs, tables and buttons.

import { h, uniqueId } from './dom.js';
import { t } from './i18n.js';

/** The page's one <h1>; the router moves focus to it after each navigation. */
export function pageHeading(text, ...extra) {
  return h('h1', { tabindex: '-1' }, text, ...extra);
}

/** A heading row: the <h1> and actions (buttons, links) beside it. */
export function pageHeader(text, actions = []) {
  return h('div', { class: 'page-header' }, pageHeading(text), actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

const NOTICE_ICONS = { info: 'ℹ', success: '✓', warning: '!', error: '!' };

/**
 * A message box. Errors are `role="alert"` (read out at once); the others `role="status"`.
 * `kind`: info, success, warning, error.
 */
export function notice(kind, message, extra = null) {
  return h(
    'div',
    { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, NOTICE_ICONS[kind] ?? ''),
    h('div', { class: 'notice-body' }, h('p', {}, message), extra),
  );
}

/** Says `message` through the page's polite live region (for screen readers). */
export function announce(message) {
  const region = document.getElementById('live');
  if (!region) return;
  region.textContent = '';
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

let flashes = [];

/** A message shown on the next page rendered (e.g. "User registered" after leaving a form). */
export function flash(kind, message) {
  flashes.push({ kind, message });
}

/** Shows pending flash messages under the page's heading (the router calls this). */
export function showFlash(view) {
  if (!flashes.length) return;
  const boxes = flashes.map(({ kind, message }) => notice(kind, message));
  flashes = [];
  const header = view.querySelector('.page-header') ?? view.querySelector('h1');
  if (header) header.after(...boxes);
  else view.prepend(...boxes);
}

/** A button; `variant`: primary, secondary, danger, link. */
export function button(label, onClick, { variant = 'secondary', type = 'button', ...attrs } = {}) {
  return h('button', { type, class: ['btn', `btn-${variant}`], onClick, ...attrs }, label);
}

/** A link that looks like a button. */
export function linkButton(href, label, { variant = 'secondary', ...attrs } = {}) {
  return h('a', { href, class: ['btn', `btn-${variant}`], ...attrs }, label);
}

/** A small status label; `kind`: ok, muted, warning, danger. */
export function badge(text, kind = 'muted') {
  return h('span', { class: ['badge', `badge-${kind}`] }, text);
}

/** A placeholder while data loads. */
export function loading() {
  return h('p', { class: 'loading', role: 'status' }, t('common.loading'));
}

/**
 * Asks for confirmation in a modal dialog. Resolves to true (confirmed) or false. Focus goes to
 * the cancel button first and returns to the element that had it.
 */
export function confirmDialog({ title, message, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const titleId = uniqueId('dialog-title');
    const textId = uniqueId('dialog-text');
    const cancel = button(t('common.cancel'), () => dialog.close('cancel'));
    const confirm = button(confirmLabel, () => dialog.close('confirm'), { variant: danger ? 'danger' : 'primary' });
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': textId },
      h('h2', { id: titleId }, title),
      h('p', { id: textId }, message),
      h('div', { class: 'form-actions' }, confirm, cancel),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (previous instanceof HTMLElement && previous.isConnected) previous.focus();
      resolve(dialog.returnValue === 'confirm');
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/**
 * A table with a caption and column headers, in a scrollable, focusable region.
 * columns: [{ label, render(row) -> node|string, rowHeader?, className? }]
 */
export function dataTable({ caption, columns, rows, empty, className = '' }) {
  const captionId = uniqueId('caption');
  const table = h(
    'table',
    { class: ['data-table', className] },
    h('caption', { id: captionId }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.className }, c.label)))),
    h(
      'tbody',
      {},
      rows.length
        ? rows.map((row) =>
            h(
              'tr',
              {},
              columns.map((c) => h(c.rowHeader ? 'th' : 'td', { scope: c.rowHeader ? 'row' : null, class: c.className }, c.render(row))),
            ),
          )
        : h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty' }, empty ?? t('common.no_rows'))),
    ),
  );
  return h('div', { class: 'table-wrap', role: 'region', 'aria-labelledby': captionId, tabindex: '0' }, table);
}

/** A definition list of `[term, value]` pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}
