// Administration → Reference books: pick a book, search its entries, add, edit, deactivate,
// activate and delete. An entry that records refer to cannot be deleted (409 `in_use`): it can
// be deactivated, which keeps it in old records and takes it out of forms.

import { registerPage } from '../router.js';
import { h, replace } from '../dom.js';
import { compare, getLang, t } from '../i18n.js';
import { del, errorMessage, get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { badge, button, confirmDialog, dataTable, flash, linkButton, notice, pageHeading } from '../ui.js';
import { BOOKS, invalidateBook, loadBook, refName, refOptions } from '../refs.js';
import { bookTitle } from '../labels.js';
import { regionWide } from '../session.js';

const BASE = '/admin/refs';
/** The order of the book tabs: the ones administrators change most first. */
const TAB_ORDER = ['institutions', 'districts', 'diagnoses', 'medicaments', 'care-forms', 'patient-statuses', 'needs'];
const CODE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const ICD10 = /^[A-Z]\d\d(\.\d{1,2})?$/i;
const ICD10_BLOCK = /^[A-Z]\d\d-[A-Z]\d\d$/i;
const ATC = /^[A-Z]\d\d[A-Z]{2}\d\d$/;

/** The fields a book has beyond code, name, name_ru and active. */
function bookFields(book, { districts = [], entry = null } = {}) {
  switch (book) {
    case 'institutions':
      return [
        {
          name: 'district_id',
          label: t('refs.fields.district'),
          type: 'select',
          options: refOptions(districts, { keep: entry?.district_id ?? null, empty: t('refs.no_district') }),
          parse: 'int-or-null',
        },
      ];
    case 'diagnoses':
      return [
        {
          name: 'block',
          label: t('refs.fields.block'),
          required: true,
          pattern: ICD10_BLOCK,
          patternMessage: t('refs.hints.block'),
          hint: t('refs.hints.block'),
          width: 'short',
          parse: (v) => v.toUpperCase(),
        },
      ];
    case 'medicaments':
      return [
        { name: 'inn', label: t('refs.fields.inn'), required: true, maxLength: 300, hint: t('refs.hints.inn') },
        {
          name: 'atc',
          label: t('refs.fields.atc'),
          required: true,
          width: 'short',
          parse: (v) => v.toUpperCase(),
          validate: (v) => (ATC.test(v) ? null : t('refs.hints.atc')),
          hint: t('refs.hints.atc'),
        },
        { name: 'dosage_form', label: t('refs.fields.dosage_form'), required: true, maxLength: 300, width: 'medium' },
        { name: 'strength', label: t('refs.fields.strength'), required: true, maxLength: 300, width: 'medium' },
        { name: 'unit', label: t('refs.fields.unit'), required: true, maxLength: 300, width: 'medium', hint: t('refs.hints.unit') },
        { name: 'controlled', label: t('refs.fields.controlled'), type: 'checkbox', hint: t('refs.hints.controlled') },
      ];
    case 'needs':
      return [
        {
          name: 'kind',
          label: t('refs.fields.kind'),
          type: 'select',
          required: true,
          options: [
            { value: '', label: t('refs.choose') },
            { value: 'equipment', label: t('refs.kinds.equipment') },
            { value: 'service', label: t('refs.kinds.service') },
          ],
        },
      ];
    default:
      return [];
  }
}

/** Extra table columns of a book. */
function bookColumns(book, { districts }) {
  switch (book) {
    case 'institutions':
      return [{ label: t('refs.fields.district'), render: (e) => refName(districts.find((d) => d.id === e.district_id)) || '—' }];
    case 'diagnoses':
      return [{ label: t('refs.fields.block'), className: 'nowrap', render: (e) => e.block }];
    case 'medicaments':
      return [
        { label: t('refs.fields.inn'), render: (e) => e.inn },
        { label: t('refs.fields.atc'), render: (e) => h('code', {}, e.atc) },
        { label: t('refs.fields.controlled_short'), render: (e) => (e.controlled ? badge(t('refs.controlled_yes'), 'warning') : '—') },
      ];
    case 'needs':
      return [{ label: t('refs.fields.kind'), render: (e) => t(`refs.kinds.${e.kind}`) }];
    default:
      return [];
  }
}

/** Both names of an entry, the current language's first. */
function names(entry) {
  const ru = getLang() === 'ru';
  const first = ru && entry.name_ru ? entry.name_ru : entry.name;
  const second = ru ? (entry.name_ru ? entry.name : null) : entry.name_ru;
  return [
    h('span', { lang: ru && entry.name_ru ? 'ru' : 'en' }, first),
    second ? h('span', { class: 'second-name', lang: ru ? 'en' : 'ru' }, second) : null,
  ];
}

function searchText(entry) {
  return [entry.code, entry.name, entry.name_ru, entry.block, entry.inn, entry.atc].filter(Boolean).join(' ').toLowerCase();
}

function bookTabs(current) {
  return h(
    'nav',
    { class: 'tabs', 'aria-label': t('refs.books_nav') },
    h(
      'ul',
      {},
      TAB_ORDER.map((book) =>
        h('li', {}, h('a', { href: `#${BASE}/${book}`, 'aria-current': book === current ? 'page' : null }, bookTitle(book))),
      ),
    ),
  );
}

function unknownBook(ctx) {
  ctx.root.append(pageHeading(t('refs.title')), notice('error', t('refs.unknown_book')), bookTabs(null));
}

async function renderBook(ctx) {
  const { book } = ctx.params;
  if (!BOOKS.includes(book)) return unknownBook(ctx);
  ctx.setTitle(`${bookTitle(book)} · ${t('refs.title')}`);
  ctx.root.append(
    pageHeading(t('refs.title')),
    bookTabs(book),
  );
  const [entries, districts] = await Promise.all([
    loadBook(book, { signal: ctx.signal }),
    book === 'institutions' ? loadBook('districts', { signal: ctx.signal }) : Promise.resolve([]),
  ]);
  const filters = createForm({
    id: `refs-filter-${book}`,
    className: 'filters',
    fields: [
      { name: 'q', label: t('refs.search'), type: 'search', autocomplete: 'off' },
      {
        name: 'status',
        label: t('refs.status_filter'),
        type: 'select',
        options: [
          { value: '', label: t('refs.any_status') },
          { value: 'active', label: t('refs.status.active') },
          { value: 'inactive', label: t('refs.status.inactive') },
        ],
      },
    ],
    submitLabel: null,
    onSubmit: () => {},
    onChange: (values) => show(values),
  });
  const count = h('p', { class: 'result-count', role: 'status' });
  const results = h('div');
  ctx.root.append(
    h(
      'div',
      { class: 'section-header' },
      h('h2', {}, bookTitle(book)),
      regionWide() ? linkButton(`#${BASE}/${book}/new`, t('refs.add'), { variant: 'primary' }) : null,
    ),
    h('p', { class: 'hint' }, t(`refs.books.${book}.about`)),
    regionWide() ? null : notice('info', t('refs.region_only')),
    filters.element,
    count,
    results,
  );
  const sorted = [...entries].sort((a, b) => compare(a.code, b.code));
  let shownFor = null;
  function show(values) {
    // The form reports `input` and then `change` (on leaving the field): drawing the table again
    // for the same filters would replace the link a click on it has just pressed.
    const key = JSON.stringify(values);
    if (key === shownFor) return;
    shownFor = key;
    const q = (values.q ?? '').toLowerCase().trim();
    const shown = sorted.filter(
      (e) =>
        (!q || searchText(e).includes(q)) &&
        (!values.status || (values.status === 'active') === e.active),
    );
    count.textContent = t('refs.count', { shown: shown.length, count: entries.length });
    replace(
      results,
      dataTable({
        caption: t('refs.caption', { book: bookTitle(book) }),
        empty: t('refs.empty'),
        rows: shown,
        columns: [
          { label: t('refs.fields.code'), rowHeader: true, className: 'nowrap', render: (e) => h('a', { href: `#${BASE}/${book}/${e.id}` }, e.code) },
          { label: t('refs.fields.names'), render: names },
          ...bookColumns(book, { districts }),
          {
            label: t('refs.fields.status'),
            render: (e) => (e.active ? badge(t('refs.status.active'), 'ok') : badge(t('refs.status.inactive'), 'muted')),
          },
        ],
      }),
    );
  }
  show(filters.values());
}

function entryFields(book, entry, districts) {
  const isDiagnosis = book === 'diagnoses';
  return [
    {
      name: 'code',
      label: t('refs.fields.code'),
      required: true,
      maxLength: 64,
      width: 'medium',
      autocomplete: 'off',
      spellcheck: 'false',
      value: entry?.code,
      pattern: isDiagnosis ? ICD10 : CODE_PATTERN,
      patternMessage: isDiagnosis ? t('refs.hints.icd10') : t('refs.code_rules'),
      hint: isDiagnosis ? t('refs.hints.icd10') : t('refs.code_rules'),
      parse: isDiagnosis ? (v) => v.toUpperCase() : undefined,
    },
    { name: 'name', label: t('refs.fields.name'), required: true, maxLength: 300, value: entry?.name },
    { name: 'name_ru', label: t('refs.fields.name_ru'), maxLength: 300, value: entry?.name_ru ?? '' },
    ...bookFields(book, { districts, entry }).map((f) => ({ ...f, value: entry ? entry[f.name] ?? f.value : f.value })),
  ];
}

function payload(values, active) {
  return { ...values, name_ru: values.name_ru ? values.name_ru : null, active };
}

function backLink(book) {
  return h('p', { class: 'back' }, h('a', { href: `#${BASE}/${book}` }, `← ${bookTitle(book)}`));
}

function nameErrorField(err) {
  if (err.code === 'invalid_name' && err.serverMessage.includes('name_ru')) return 'name_ru';
  if (err.code === 'invalid_name') {
    const field = ['inn', 'dosage_form', 'strength', 'unit'].find((f) => err.serverMessage.includes(`\`${f}\``));
    return field ?? 'name';
  }
  return undefined;
}

async function renderNew(ctx) {
  const { book } = ctx.params;
  if (!BOOKS.includes(book)) return unknownBook(ctx);
  const title = t('refs.new_title', { book: bookTitle(book) });
  ctx.setTitle(title);
  ctx.root.append(backLink(book), pageHeading(title));
  if (!regionWide()) {
    ctx.root.append(notice('info', t('refs.region_only')));
    return;
  }
  const districts = book === 'institutions' ? await loadBook('districts', { signal: ctx.signal }) : [];
  const form = createForm({
    id: `ref-new-${book}`,
    fields: entryFields(book, null, districts),
    submitLabel: t('refs.add_submit'),
    secondary: [linkButton(`#${BASE}/${book}`, t('common.cancel'))],
    errorFields: nameErrorField,
    async onSubmit(values) {
      const created = await post(`/refs/${book}`, payload(values, true));
      invalidateBook(book);
      flash('success', t('refs.added', { code: created.code }));
      ctx.navigate(`${BASE}/${book}`);
    },
  });
  ctx.root.append(form.element);
}

async function renderEdit(ctx) {
  const { book, id } = ctx.params;
  if (!BOOKS.includes(book) || !/^\d+$/.test(id)) return unknownBook(ctx);
  ctx.root.append(backLink(book));
  const [entry, districts] = await Promise.all([
    get(`/refs/${book}/${id}`, { signal: ctx.signal }),
    book === 'institutions' ? loadBook('districts', { signal: ctx.signal }) : Promise.resolve([]),
  ]);
  const title = t('refs.edit_title', { code: entry.code });
  ctx.setTitle(`${title} · ${bookTitle(book)}`);
  const heading = pageHeading(title, ' ', entry.active ? badge(t('refs.status.active'), 'ok') : badge(t('refs.status.inactive'), 'muted'));
  const lead = h('p', { class: 'lead' }, bookTitle(book), ' · ', refName(entry));
  if (!regionWide()) {
    ctx.root.append(heading, lead, notice('info', t('refs.region_only')));
    return;
  }
  const form = createForm({
    id: `ref-edit-${book}`,
    fields: entryFields(book, entry, districts),
    submitLabel: t('common.save'),
    errorFields: nameErrorField,
    async onSubmit(values) {
      const saved = await put(`/refs/${book}/${id}`, payload(values, entry.active));
      invalidateBook(book);
      flash('success', t('refs.saved', { code: saved.code }));
      ctx.navigate(`${BASE}/${book}`);
    },
  });

  const status = h('div', { class: 'form-alert' });
  async function setActive(active) {
    try {
      const saved = await put(`/refs/${book}/${id}`, payload(entryValues(entry), active));
      invalidateBook(book);
      flash('success', t(active ? 'refs.activated' : 'refs.deactivated', { code: saved.code }));
      ctx.navigate(ctx.route, { replace: true });
    } catch (err) {
      if (!err.sessionExpired) replace(status, notice('error', errorMessage(err)));
    }
  }
  async function remove() {
    const ok = await confirmDialog({
      title: t('refs.delete_confirm_title', { code: entry.code }),
      message: t('refs.delete_confirm_text'),
      confirmLabel: t('refs.delete'),
      danger: true,
    });
    if (!ok) return;
    try {
      await del(`/refs/${book}/${id}`);
      invalidateBook(book);
      flash('success', t('refs.deleted', { code: entry.code }));
      ctx.navigate(`${BASE}/${book}`);
    } catch (err) {
      if (err.sessionExpired) return;
      if (err.code === 'in_use') {
        // The alert is read out; focus goes to what the user can do instead: deactivate.
        replace(status, notice('error', t('refs.in_use')));
        (entry.active ? deactivateButton : deleteButton).focus();
      } else replace(status, notice('error', errorMessage(err)));
    }
  }

  const deactivateButton = entry.active
    ? button(t('refs.deactivate'), () => setActive(false))
    : button(t('refs.activate'), () => setActive(true), { variant: 'primary' });
  const deleteButton = button(t('refs.delete'), remove, { variant: 'danger' });
  ctx.root.append(
    heading,
    lead,
    h('section', { class: 'card', 'aria-labelledby': 'ref-edit-h' }, h('h2', { id: 'ref-edit-h' }, t('refs.edit_section')), form.element),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'ref-status-h' },
      h('h2', { id: 'ref-status-h' }, t('refs.status_section')),
      status,
      h('p', {}, entry.active ? t('refs.deactivate_text') : t('refs.activate_text')),
      h('div', { class: 'form-actions' }, deactivateButton, deleteButton),
      h('p', { class: 'hint' }, t('refs.delete_text')),
    ),
  );
}

/** The writable fields of an entry as the server gave it. */
function entryValues(entry) {
  const { id, active, ...rest } = entry;
  return rest;
}

registerPage({
  route: `${BASE}/:book`,
  titleKey: 'refs.title',
  permission: 'administration',
  menu: { section: 'admin', order: 30, labelKey: 'nav.refs', descriptionKey: 'home.shortcuts.refs', path: `${BASE}/institutions` },
  render: renderBook,
});
registerPage({
  route: BASE,
  titleKey: 'refs.title',
  permission: 'administration',
  render: (ctx) => ctx.navigate(`${BASE}/institutions`, { replace: true }),
});
registerPage({ route: `${BASE}/:book/new`, titleKey: 'refs.title', permission: 'administration', render: renderNew });
registerPage({ route: `${BASE}/:book/:id`, titleKey: 'refs.title', permission: 'administration', render: renderEdit });
