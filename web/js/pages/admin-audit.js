// Administration → Audit log: filters, newest first, keyset paging to older entries. Each entry
// shows its place in the hash chain (previous hash, own hash, shortened); `palreg audit verify`
// checks the whole chain on the server.

import { registerPage, withQuery } from '../router.js';
import { append, h } from '../dom.js';
import { formatDateAndTime, t } from '../i18n.js';
import { get } from '../api.js';
import { createForm } from '../forms.js';
import { badge, dataTable, linkButton, notice, pageHeader } from '../ui.js';

const ROUTE = '/admin/audit';
const FILTERS = ['actor', 'action', 'object_type', 'object_id', 'outcome', 'from', 'to'];
const PAGE_SIZES = ['25', '50', '100', '200'];
const DEFAULT_SIZE = '50';
/** Actions the server records today (a hint list; the filter takes any text). */
const KNOWN_ACTIONS = [
  'auth.login',
  'auth.logout',
  'me.password',
  'me.totp.enrol',
  'me.totp.confirm',
  'me.totp.remove',
  'me.totp.recovery_codes',
  'keys.public_key',
  'keys.create',
  'keys.grant',
  'keys.rotate',
  'keys.link',
  'keys.withdraw',
  'patients.create',
  'patients.import',
  'patients.read',
  'patients.update',
  'patients.history',
  'patients.search',
  'observations.create',
  'observations.read',
  'observations.notes_pending',
  'observations.reseal_note',
  'prescriptions.create',
  'prescriptions.read',
  'prescriptions.update',
  'prescriptions.history',
  'prescriptions.search',
  'reports.prescriptions',
  'reports.summary',
  'admin.user.create',
  'admin.user.update',
  'admin.user.deactivate',
  'admin.user.totp_reset',
  'admin.role.create',
  'admin.role.update',
  'admin.role.delete',
  'admin.audit.read',
  'refs.create',
  'refs.update',
  'refs.delete',
  'access.denied',
  'system.first_admin',
  'system.seed',
  'system.backup',
  'system.restore',
];

/** Outcomes worth offering in the filter: success and the usual refusals. */
const KNOWN_OUTCOMES = ['ok', 'invalid_credentials', 'account_locked', 'forbidden', 'not_found', 'in_use', 'wrong_password', 'totp_required', 'invalid_totp'];

/** A local `datetime-local` value as the server's UTC `YYYY-MM-DDTHH:MM:SS`. */
function localToUtc(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString().slice(0, 19);
}

function shortHash(hash) {
  return h('code', { class: 'hash', title: hash }, `${hash.slice(0, 8)}…`);
}

/** Date above time, to keep the table narrow. */
function timeCell(utc) {
  const { date, time } = formatDateAndTime(utc);
  return [h('div', {}, date), h('div', { class: 'sub' }, time)];
}

function outcomeBadge(outcome) {
  return outcome === 'ok' ? badge(t('audit.outcome_ok'), 'ok') : badge(outcome, 'warning');
}

async function render(ctx) {
  const query = Object.fromEntries(FILTERS.map((name) => [name, ctx.query.get(name) ?? '']));
  const limit = PAGE_SIZES.includes(ctx.query.get('limit')) ? ctx.query.get('limit') : DEFAULT_SIZE;
  const before = /^\d+$/.test(ctx.query.get('before') ?? '') ? ctx.query.get('before') : null;

  ctx.root.append(pageHeader(t('audit.title')), h('p', { class: 'lead' }, t('audit.intro')));
  const actions = h('datalist', { id: 'audit-actions' }, KNOWN_ACTIONS.map((a) => h('option', { value: a })));
  const form = createForm({
    id: 'audit-filter',
    className: 'filters filters-wide',
    fields: [
      { name: 'actor', label: t('audit.fields.actor'), value: query.actor, autocomplete: 'off' },
      { name: 'action', label: t('audit.fields.action'), value: query.action, autocomplete: 'off' },
      { name: 'object_type', label: t('audit.fields.object_type'), value: query.object_type, autocomplete: 'off' },
      { name: 'object_id', label: t('audit.fields.object_id'), value: query.object_id, autocomplete: 'off' },
      { name: 'outcome', label: t('audit.fields.outcome'), value: query.outcome, autocomplete: 'off' },
      { name: 'from', label: t('audit.fields.from'), type: 'datetime-local', value: query.from },
      {
        name: 'to',
        label: t('audit.fields.to'),
        type: 'datetime-local',
        value: query.to,
        validate: (value, values) => (value && values.from && value <= values.from ? t('audit.to_after_from') : null),
      },
      { name: 'limit', label: t('audit.fields.limit'), type: 'select', value: limit, options: PAGE_SIZES.map((s) => ({ value: s, label: s })) },
    ],
    submitLabel: t('audit.apply'),
    secondary: [linkButton(`#${ROUTE}`, t('audit.clear'))],
    onSubmit(values) {
      ctx.navigate(withQuery(ROUTE, values));
    },
  });
  const outcomes = h('datalist', { id: 'audit-outcomes' }, KNOWN_OUTCOMES.map((o) => h('option', { value: o })));
  form.field('action')?.setAttribute('list', 'audit-actions');
  form.field('outcome')?.setAttribute('list', 'audit-outcomes');
  ctx.root.append(h('section', { class: 'card card-wide', 'aria-label': t('audit.filters') }, actions, outcomes, form.element));

  const page = await get('/admin/audit', {
    signal: ctx.signal,
    query: { ...query, from: localToUtc(query.from), to: localToUtc(query.to), before, limit },
  });
  const filtered = FILTERS.some((name) => query[name]);
  const caption = before ? t('audit.caption_older', { seq: before }) : t('audit.caption');
  append(ctx.root, [
    filtered ? notice('info', t('audit.filtered')) : null,
    dataTable({
      caption,
      className: 'audit-table',
      empty: t('audit.empty'),
      rows: page.items,
      columns: [
        { label: t('audit.fields.seq'), rowHeader: true, className: 'num', render: (e) => String(e.seq) },
        { label: t('audit.fields.at'), className: 'nowrap', render: (e) => timeCell(e.at) },
        { label: t('audit.fields.who'), render: (e) => [h('div', {}, e.actor_login ?? '—'), h('div', { class: 'sub' }, e.client_addr ?? '')] },
        {
          label: t('audit.fields.what'),
          render: (e) => [h('div', {}, h('code', {}, e.action)), h('div', { class: 'sub' }, e.object_type, e.object_id ? ` ${e.object_id}` : '')],
        },
        { label: t('audit.fields.outcome'), render: (e) => outcomeBadge(e.outcome) },
        { label: t('audit.fields.details'), className: 'details', render: (e) => (e.details ? h('code', {}, e.details) : '') },
        {
          label: t('audit.fields.chain'),
          className: 'nowrap',
          render: (e) => [
            h('div', {}, h('span', { class: 'sub chain-label' }, t('audit.chain_prev')), ' ', shortHash(e.prev_hash)),
            h('div', {}, h('span', { class: 'sub chain-label' }, t('audit.chain_own')), ' ', shortHash(e.hash)),
          ],
        },
      ],
    }),
    h(
      'nav',
      { class: 'pager', 'aria-label': t('audit.paging') },
      before ? linkButton(`#${withQuery(ROUTE, { ...query, limit })}`, `« ${t('audit.newest')}`) : null,
      page.next_before !== null && page.next_before !== undefined
        ? linkButton(`#${withQuery(ROUTE, { ...query, limit, before: page.next_before })}`, `${t('audit.older')} ›`, { rel: 'next' })
        : h('p', { class: 'muted' }, t('audit.end')),
    ),
  ]);
}

registerPage({
  route: ROUTE,
  titleKey: 'audit.title',
  permission: 'administration',
  menu: { section: 'admin', order: 40, labelKey: 'nav.audit', descriptionKey: 'home.shortcuts.audit' },
  render,
});
