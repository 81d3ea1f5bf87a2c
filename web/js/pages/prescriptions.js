// Prescriptions: write one for a patient, search the institution's prescriptions (History of
// Prescriptions), open one with its versions, edit it, complete or cancel it. Prescriptions
// carry no identifying field; the patient is shown by name only after the browser has opened
// the passport with the institution key (else by the short form of the pseudonym), and no name
// is ever sent.

import { allowed, registerPage, withQuery } from '../router.js';
import { h } from '../dom.js';
import { formatDateTime, has, t } from '../i18n.js';
import { ApiError, errorMessage, get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { badge, button, confirmDialog, dataTable, facts, flash, linkButton, notice, pageHeader, pageHeading } from '../ui.js';
import { openInstitutionKeys } from '../keystore.js';
import { openPassport } from '../passports.js';
import { loadBook, refName } from '../refs.js';

/** Routes of administration the server accepts (server/src/routes/prescriptions.rs). */
export const ROUTES = ['oral', 'sublingual', 'buccal', 'transdermal', 'subcutaneous', 'intravenous', 'intramuscular', 'rectal', 'intranasal', 'inhalation', 'other'];
export const STATUSES = ['active', 'completed', 'cancelled'];
const PAGE_SIZE = 25;
const MAX_AMOUNT = 1_000_000;

export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** The short form of a pseudonym, as the reports print it: 8 characters and "…". */
export function shortPseudonym(pseudonym) {
  const chars = [...(pseudonym ?? '')];
  return chars.length > 8 ? `${chars.slice(0, 8).join('')}…` : chars.join('');
}

const fullName = (p) => [p.surname, p.first_name, p.patronymic].filter(Boolean).join(' ');

/** A decimal typed with a comma or a dot; null when empty, NaN when not a number. */
function decimal(raw) {
  if (raw === '' || raw === null || raw === undefined) return null;
  const text = String(raw).replace(',', '.').replace(/\s/g, '');
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
}

function amountError(value) {
  if (value === null) return null;
  return Number.isFinite(value) && value > 0 && value <= MAX_AMOUNT ? null : t('prescriptions.validation.amount');
}

/** An amount as the user's language writes it. */
function amount(value) {
  return new Intl.NumberFormat(document.documentElement.lang || 'en', { maximumFractionDigits: 3 }).format(value);
}

/**
 * Looks patients up by id and names them: by full name when the institution key is open in
 * this browser (the passport is opened here), else by the short pseudonym. Needs `patients`.
 */
export async function patientNamer(ctx) {
  // Every key version I hold: until a rotation is finished, some passports are still sealed
  // under an older one.
  let keys = new Map();
  const canRead = allowed(ctx.user, 'patients') && Boolean(ctx.user.institution);
  if (canRead) {
    try {
      keys = await openInstitutionKeys(ctx.user, { signal: ctx.signal });
    } catch (err) {
      if (err instanceof ApiError && err.sessionExpired) throw err;
      if (err?.name === 'AbortError') throw err;
    }
  }
  const cache = new Map();
  async function load(id) {
    if (!canRead) return { id, name: null, pseudonym: null, status: null };
    const patient = await get(`/patients/${encodeURIComponent(id)}`, { signal: ctx.signal });
    let name = null;
    if (keys.size) {
      try {
        name = fullName(openPassport(keys, patient, patient.institution_id));
      } catch {
        name = null; // sealed under a key version I do not hold
      }
    }
    return { id: patient.id, name, pseudonym: patient.pseudonym, status: patient.record.status, patient };
  }
  const namer = (id) => {
    if (!cache.has(id)) {
      const promise = load(id);
      cache.set(id, promise);
      promise.catch(() => cache.delete(id));
    }
    return cache.get(id);
  };
  namer.keyOpen = keys.size > 0;
  return namer;
}

/** A patient's name (marked sensitive), or the short pseudonym, linked to the patient's page. */
export function patientCell(info, { link = true } = {}) {
  let label;
  if (info?.name) label = h('span', { dataset: { sensitive: '' } }, info.name);
  else if (info?.pseudonym) label = h('code', { title: info.pseudonym }, shortPseudonym(info.pseudonym));
  else label = `#${info?.id ?? '?'}`;
  return link && info?.pseudonym ? h('a', { href: `#/patients/${info.id}`, class: 'patient-link' }, label) : label;
}

/** The institution's members by id (for prescriber names); empty without `patients`. */
export async function membersOf(ctx) {
  if (!ctx.user.institution || !allowed(ctx.user, 'patients')) return [];
  try {
    return (await get(`/institutions/${ctx.user.institution.id}/members`, { signal: ctx.signal })).members;
  } catch (err) {
    if (err?.sessionExpired || err?.name === 'AbortError') throw err;
    return [];
  }
}

/**
 * The prescription filters that History of Prescriptions and the prescription report share,
 * filled from the page's query: medicament, controlled substance, status and — when the
 * institution's members could be listed — prescriber (`null` otherwise).
 */
export function prescriptionFilters(query, medicaments, members) {
  const q = (name) => query.get(name) ?? '';
  const any = { value: '', label: t('prescriptions.any') };
  return {
    medicament: {
      name: 'medicament',
      label: t('prescriptions.fields.medicament'),
      type: 'select',
      value: q('medicament'),
      options: [any, ...[...medicaments].sort((a, b) => refName(a).localeCompare(refName(b))).map((m) => ({ value: String(m.id), label: refName(m) }))],
    },
    controlled: {
      name: 'controlled',
      label: t('prescriptions.fields.controlled'),
      type: 'select',
      value: q('controlled'),
      options: [any, { value: 'yes', label: t('prescriptions.controlled.yes') }, { value: 'no', label: t('prescriptions.controlled.no') }],
    },
    status: {
      name: 'status',
      label: t('prescriptions.fields.status'),
      type: 'select',
      value: q('status'),
      options: [any, ...STATUSES.map((s) => ({ value: s, label: t(`prescriptions.status.${s}`) }))],
    },
    prescriber: members.length
      ? {
          name: 'prescriber',
          label: t('prescriptions.fields.prescriber'),
          type: 'select',
          value: q('prescriber'),
          options: [any, ...members.map((m) => ({ value: String(m.user_id), label: m.full_name }))],
        }
      : null,
  };
}

function medicamentLabel(m) {
  return m.controlled ? `${refName(m)} — ${t('prescriptions.controlled_mark')}` : refName(m);
}

function statusBadge(status) {
  const kind = { active: 'ok', completed: 'muted', cancelled: 'danger' }[status] ?? 'muted';
  return badge(has(`prescriptions.status.${status}`) ? t(`prescriptions.status.${status}`) : status, kind);
}

/** A medicament's unit of account: the seeded book's English words in the page's language. */
function unitName(unit) {
  if (!unit) return '';
  return has(`prescriptions.units.${unit}`) ? t(`prescriptions.units.${unit}`) : unit;
}

function routeName(route) {
  // `other` has a key of its own: in a catalog, an object with an `other` key is a plural.
  if (route === 'other') return t('prescriptions.route_other');
  return has(`prescriptions.routes.${route}`) ? t(`prescriptions.routes.${route}`) : route;
}

/** A notice (and null) when the user belongs to no institution: prescriptions are an institution's. */
function needsInstitution(ctx) {
  if (ctx.user.institution) return false;
  ctx.root.append(notice('warning', t('prescriptions.no_institution')));
  return true;
}

/** The fields of a prescription (new or edited). `medicaments`: the whole book. */
function prescriptionFields(medicaments, current = null) {
  const offered = medicaments
    .filter((m) => m.active || m.id === current?.medicament_id)
    .sort((a, b) => refName(a).localeCompare(refName(b), document.documentElement.lang || 'en'));
  const v = current ?? {};
  return [
    {
      name: 'prescribed_on',
      label: t('prescriptions.fields.prescribed_on'),
      type: 'date',
      required: true,
      value: v.prescribed_on ?? today(),
      max: today(),
      validate: (value) => (value && value > today() ? t('prescriptions.validation.future') : null),
    },
    {
      name: 'medicament_id',
      label: t('prescriptions.fields.medicament'),
      type: 'select',
      required: true,
      parse: 'int',
      width: 'long',
      value: v.medicament_id ?? '',
      options: [
        { value: '', label: t('prescriptions.choose') },
        ...offered.map((m) => ({ value: String(m.id), label: m.active ? medicamentLabel(m) : `${medicamentLabel(m)} (${t('refs.inactive_suffix')})` })),
      ],
    },
    { name: 'dose', label: t('prescriptions.fields.dose'), required: true, width: 'short', inputmode: 'decimal', parse: decimal, value: v.dose ?? '', validate: amountError },
    { name: 'dose_unit', label: t('prescriptions.fields.dose_unit'), required: true, width: 'short', maxLength: 32, value: v.dose_unit ?? 'mg', hint: t('prescriptions.fields.dose_unit_hint') },
    {
      name: 'route',
      label: t('prescriptions.fields.route'),
      type: 'select',
      required: true,
      value: v.route ?? 'oral',
      options: ROUTES.map((r) => ({ value: r, label: routeName(r) })),
    },
    { name: 'frequency', label: t('prescriptions.fields.frequency'), required: true, maxLength: 100, value: v.frequency ?? '', hint: t('prescriptions.fields.frequency_hint') },
    {
      name: 'quantity',
      label: t('prescriptions.fields.quantity'),
      required: true,
      width: 'short',
      inputmode: 'decimal',
      parse: decimal,
      value: v.quantity ?? '',
      hint: t('prescriptions.fields.quantity_hint'),
      validate: amountError,
    },
    {
      name: 'start_on',
      label: t('prescriptions.fields.start_on'),
      type: 'date',
      required: true,
      value: v.start_on ?? today(),
      validate: (value, values) => (value && values.prescribed_on && value < values.prescribed_on ? t('prescriptions.validation.start_before') : null),
    },
    {
      name: 'end_on',
      label: t('prescriptions.fields.end_on'),
      type: 'date',
      value: v.end_on ?? '',
      validate: (value, values) => (value && values.start_on && value < values.start_on ? t('prescriptions.validation.end_before') : null),
    },
  ];
}

const FIELD_SECTIONS = () => [
  { legend: t('prescriptions.sections.medicament'), fields: ['medicament_id', 'dose', 'dose_unit', 'route', 'frequency', 'quantity'] },
  { legend: t('prescriptions.sections.dates'), fields: ['prescribed_on', 'start_on', 'end_on'] },
];

function inputOf(values) {
  return {
    prescribed_on: values.prescribed_on,
    medicament_id: values.medicament_id,
    dose: values.dose,
    dose_unit: values.dose_unit,
    route: values.route,
    frequency: values.frequency,
    quantity: values.quantity,
    start_on: values.start_on,
    end_on: values.end_on || null,
  };
}

/**
 * Puts a refusal of the server on the field it concerns, with a message saying what to fix.
 * Returns false for an error that is not about a field.
 */
function showFieldError(err, form, values) {
  if (!(err instanceof ApiError)) return false;
  let field = null;
  let message = null;
  switch (err.code) {
    case 'invalid_dose':
      [field, message] = ['dose', t('prescriptions.validation.amount')];
      break;
    case 'invalid_quantity':
      [field, message] = ['quantity', t('prescriptions.validation.amount')];
      break;
    case 'invalid_route':
      [field, message] = ['route', t('errors.invalid_route')];
      break;
    case 'unknown_medicament':
    case 'inactive_medicament':
      [field, message] = ['medicament_id', t(`errors.${err.code}`)];
      break;
    case 'invalid_field':
      field = /frequency/.test(err.serverMessage) ? 'frequency' : 'dose_unit';
      message = t('errors.invalid_field');
      break;
    case 'invalid_dates':
      // The server's rules, in its order: not in the future, start on or after the date of the
      // prescription, end on or after the start.
      if (values.start_on < values.prescribed_on) [field, message] = ['start_on', t('prescriptions.validation.start_before')];
      else if (values.end_on && values.end_on < values.start_on) [field, message] = ['end_on', t('prescriptions.validation.end_before')];
      else [field, message] = ['prescribed_on', t('prescriptions.validation.future')];
      break;
    default:
      return false;
  }
  form.setError(field, message);
  form.setFormError(t('validation.summary', { count: 1 }));
  form.field(field)?.focus();
  return true;
}

async function renderNew(ctx, patientId) {
  ctx.root.append(pageHeading(t('prescriptions.new.title')));
  if (needsInstitution(ctx)) return;
  if (!patientId || !/^\d+$/.test(patientId)) {
    ctx.root.append(
      notice('info', t('prescriptions.new.choose_patient'), h('p', {}, linkButton('#/patients', t('prescriptions.new.find_patient'), { variant: 'primary', id: 'prescription-find-patient' }))),
    );
    return;
  }
  const [namer, medicaments] = await Promise.all([patientNamer(ctx), loadBook('medicaments', { signal: ctx.signal })]);
  const info = await namer(Number(patientId));
  ctx.root.append(
    facts([
      [t('prescriptions.fields.patient'), patientCell(info)],
      ...(info.pseudonym ? [[t('patients.fields.pseudonym'), h('code', {}, info.pseudonym)]] : []),
    ]),
  );
  if (!namer.keyOpen) {
    ctx.root.append(notice('info', t('prescriptions.name_hidden'), h('p', {}, h('a', { href: '#/keys' }, t('patients.go_to_keys')))));
  }
  if (info.status && info.status !== 'registered') {
    ctx.root.append(notice('warning', t('errors.patient_not_registered')));
    return;
  }
  const form = createForm({
    id: `prescription-new-${patientId}`,
    fields: prescriptionFields(medicaments),
    sections: FIELD_SECTIONS(),
    submitLabel: t('prescriptions.new.submit'),
    secondary: [linkButton(`#/patients/${patientId}`, t('common.cancel'))],
    async onSubmit(values, f) {
      let created;
      try {
        created = await post('/prescriptions', { patient_id: Number(patientId), ...inputOf(values) });
      } catch (err) {
        if (showFieldError(err, f, values)) return;
        throw err;
      }
      flash('success', t('prescriptions.new.created', { number: created.number }));
      ctx.navigate(`/prescriptions/${created.id}`);
    },
  });
  ctx.root.append(form.element);
}

registerPage({
  route: '/prescriptions/new',
  titleKey: 'prescriptions.new.title',
  permission: 'medical_records',
  menu: { section: 'prescriptions', order: 10, labelKey: 'prescriptions.new.title', descriptionKey: 'home.shortcuts.prescriptions_new' },
  render: (ctx) => renderNew(ctx, ctx.query.get('patient')),
});

registerPage({
  route: '/patients/:id/prescriptions/new',
  titleKey: 'prescriptions.new.title',
  permission: 'medical_records',
  render: (ctx) => renderNew(ctx, ctx.params.id),
});

/** The search filters from the address (`#/prescriptions?status=active&…`). */
function filtersOf(query) {
  const int = (name) => (/^\d+$/.test(query.get(name) ?? '') ? Number(query.get(name)) : null);
  const controlled = query.get('controlled');
  return {
    medicament_id: int('medicament'),
    controlled: controlled === 'yes' ? true : controlled === 'no' ? false : null,
    from: query.get('from') || null,
    to: query.get('to') || null,
    prescriber_id: int('prescriber'),
    status: STATUSES.includes(query.get('status')) ? query.get('status') : null,
    patient_id: int('patient'),
  };
}

function prescriptionsTable({ caption, rows, namer, medicaments, members, showPatient = true }) {
  const med = new Map(medicaments.map((m) => [m.id, m]));
  const who = new Map(members.map((m) => [m.user_id, m.full_name]));
  const columns = [
    { label: t('prescriptions.fields.number'), rowHeader: true, className: 'nowrap', render: (r) => h('a', { href: `#/prescriptions/${r.p.id}` }, r.p.number) },
    { label: t('prescriptions.fields.prescribed_on'), className: 'nowrap', render: (r) => r.p.prescribed_on },
  ];
  if (showPatient) columns.push({ label: t('prescriptions.fields.patient'), render: (r) => patientCell(r.patient) });
  columns.push(
    {
      label: t('prescriptions.fields.medicament'),
      render: (r) => {
        const m = med.get(r.p.medicament_id);
        return [refName(m) || `#${r.p.medicament_id}`, m?.controlled ? [' ', badge(t('prescriptions.controlled_mark'), 'warning')] : null];
      },
    },
    { label: t('prescriptions.fields.dose'), render: (r) => [`${amount(r.p.dose)} ${r.p.dose_unit}`, h('div', { class: 'sub' }, routeName(r.p.route), ', ', r.p.frequency)] },
    { label: t('prescriptions.fields.quantity'), className: 'num', render: (r) => `${amount(r.p.quantity)} ${unitName(med.get(r.p.medicament_id)?.unit)}`.trim() },
    { label: t('prescriptions.fields.course'), render: (r) => `${r.p.start_on} – ${r.p.end_on ?? '…'}` },
    { label: t('prescriptions.fields.prescriber'), render: (r) => who.get(r.p.prescriber_id) ?? `#${r.p.prescriber_id}` },
    { label: t('prescriptions.fields.status'), render: (r) => statusBadge(r.p.status) },
  );
  return dataTable({ caption, className: 'prescriptions-table', columns, rows, empty: t('prescriptions.search.none') });
}

/** Rows with their patients named (one look-up per patient, failures shown as #id). */
async function withPatients(items, namer) {
  return Promise.all(
    items.map(async (p) => {
      let patient;
      try {
        patient = await namer(p.patient_id);
      } catch (err) {
        if (err?.sessionExpired || err?.name === 'AbortError') throw err;
        patient = { id: p.patient_id, name: null, pseudonym: null };
      }
      return { p, patient };
    }),
  );
}

registerPage({
  route: '/prescriptions',
  titleKey: 'prescriptions.search.title',
  permission: 'medical_records',
  menu: { section: 'prescriptions', order: 20, labelKey: 'prescriptions.search.title', descriptionKey: 'home.shortcuts.prescriptions_search' },
  async render(ctx) {
    ctx.root.append(pageHeader(t('prescriptions.search.title')));
    if (needsInstitution(ctx)) return;
    const filters = filtersOf(ctx.query);
    const [namer, medicaments, members] = await Promise.all([
      patientNamer(ctx),
      loadBook('medicaments', { signal: ctx.signal }),
      membersOf(ctx),
    ]);
    const q = (name) => ctx.query.get(name) ?? '';
    const shared = prescriptionFilters(ctx.query, medicaments, members);
    const fields = [
      shared.medicament,
      shared.controlled,
      { name: 'from', label: t('prescriptions.fields.from'), type: 'date', value: q('from') },
      {
        name: 'to',
        label: t('prescriptions.fields.to'),
        type: 'date',
        value: q('to'),
        validate: (value, values) => (value && values.from && value < values.from ? t('prescriptions.validation.period') : null),
      },
      shared.status,
    ];
    if (shared.prescriber) fields.push(shared.prescriber);
    const form = createForm({
      id: 'prescription-search',
      className: 'filters filters-wide',
      fields,
      submitLabel: t('prescriptions.search.submit'),
      secondary: [linkButton('#/prescriptions', t('prescriptions.search.clear'))],
      onSubmit(values) {
        ctx.navigate(withQuery('/prescriptions', { ...values, patient: filters.patient_id }));
      },
    });
    ctx.root.append(h('section', { class: 'card card-wide', 'aria-label': t('prescriptions.search.filters') }, form.element));

    if (filters.patient_id) {
      const patient = await namer(filters.patient_id).catch((err) => {
        if (err?.sessionExpired || err?.name === 'AbortError') throw err;
        return { id: filters.patient_id };
      });
      ctx.root.append(
        notice(
          'info',
          t('prescriptions.search.one_patient'),
          h('p', {}, patientCell(patient), ' · ', h('a', { href: `#${withQuery('/prescriptions', { ...Object.fromEntries(ctx.query), patient: null })}`, id: 'prescription-all-patients' }, t('prescriptions.search.all_patients'))),
        ),
      );
    }
    if (allowed(ctx.user, 'reporting')) {
      const period = { from: filters.from ?? today().slice(0, 8).concat('01'), to: filters.to ?? today() };
      ctx.root.append(
        h(
          'p',
          {},
          h(
            'a',
            { href: `#${withQuery('/reports/prescriptions', { ...Object.fromEntries(ctx.query), ...period })}`, id: 'prescription-report-link' },
            t('prescriptions.search.report_link'),
          ),
        ),
      );
    }

    const results = h('div', { class: 'search-results' });
    ctx.root.append(results);
    const shown = [];
    async function fetchPage(after) {
      const page = await post('/prescriptions/search', { ...filters, after: after ?? null, limit: PAGE_SIZE }, { signal: ctx.signal });
      shown.push(...(await withPatients(page.items, namer)));
      const table = prescriptionsTable({
        caption: t('prescriptions.search.caption', { count: page.total, shown: shown.length }),
        rows: shown,
        namer,
        medicaments,
        members,
      });
      const more = page.next_after
        ? button(
            t('prescriptions.search.next'),
            () =>
              fetchPage(page.next_after).catch((err) => {
                if (!err?.sessionExpired) results.append(notice('error', errorMessage(err)));
              }),
            { id: 'prescription-next' },
          )
        : null;
      results.replaceChildren(table, more ?? '');
      results.dataset.done = 'true';
    }
    try {
      await fetchPage(null);
    } catch (err) {
      if (err?.sessionExpired || err?.name === 'AbortError') throw err;
      form.showError(err);
    }
  },
});

/** The patient's prescriptions, for the patient's page (needs `medical_records`). */
export async function patientPrescriptions(ctx, patientId) {
  const section = h('section', { class: 'patient-prescriptions', 'aria-labelledby': 'patient-prescriptions-title' });
  section.append(
    h(
      'div',
      { class: 'section-header' },
      h('h2', { id: 'patient-prescriptions-title' }, t('prescriptions.patient.title')),
      h(
        'div',
        { class: 'page-actions' },
        linkButton(`#/patients/${patientId}/prescriptions/new`, t('prescriptions.new.title'), { variant: 'primary', id: 'patient-new-prescription' }),
        linkButton(`#${withQuery('/prescriptions', { patient: patientId })}`, t('prescriptions.patient.all'), { id: 'patient-prescription-history' }),
      ),
    ),
  );
  let page;
  let medicaments;
  let members;
  try {
    [page, medicaments, members] = await Promise.all([
      post('/prescriptions/search', { patient_id: Number(patientId), limit: 50 }, { signal: ctx.signal }),
      loadBook('medicaments', { signal: ctx.signal }),
      membersOf(ctx),
    ]);
  } catch (err) {
    if (err?.sessionExpired || err?.name === 'AbortError') throw err;
    section.append(notice('error', errorMessage(err)));
    return section;
  }
  section.append(
    prescriptionsTable({
      caption: t('prescriptions.search.caption', { count: page.total, shown: page.items.length }),
      rows: page.items.map((p) => ({ p, patient: null })),
      medicaments,
      members,
      showPatient: false,
    }),
  );
  return section;
}

function staleMessage(err, form, ctx, id) {
  if (!(err instanceof ApiError)) return false;
  if (err.code === 'stale_version') {
    form.setFormError(t('prescriptions.stale'));
    form.element.querySelector('.form-alert .notice-body')?.append(button(t('prescriptions.reload'), () => ctx.navigate(`/prescriptions/${id}`, { replace: true }), { id: 'prescription-reload' }));
    form.element.querySelector('.form-alert .notice')?.setAttribute('tabindex', '-1');
    form.element.querySelector('.form-alert .notice')?.focus();
    return true;
  }
  if (err.code === 'not_active') {
    form.setFormError(t('errors.not_active'));
    form.element.querySelector('.form-alert .notice-body')?.append(button(t('prescriptions.reload'), () => ctx.navigate(`/prescriptions/${id}`, { replace: true }), { id: 'prescription-reload' }));
    return true;
  }
  return false;
}

registerPage({
  route: '/prescriptions/:id',
  titleKey: 'prescriptions.detail.title',
  permission: 'medical_records',
  async render(ctx) {
    ctx.root.append(pageHeading(t('prescriptions.detail.title')));
    if (needsInstitution(ctx)) return;
    const id = encodeURIComponent(ctx.params.id);
    const [p, history, namer, medicaments, members] = await Promise.all([
      get(`/prescriptions/${id}`, { signal: ctx.signal }),
      get(`/prescriptions/${id}/history`, { signal: ctx.signal }),
      patientNamer(ctx),
      loadBook('medicaments', { signal: ctx.signal }),
      membersOf(ctx),
    ]);
    const patient = await namer(p.patient_id).catch((err) => {
      if (err?.sessionExpired || err?.name === 'AbortError') throw err;
      return { id: p.patient_id };
    });
    const heading = ctx.root.querySelector('h1');
    heading.textContent = t('prescriptions.detail.heading', { number: p.number });
    heading.append(' ', statusBadge(p.status));
    ctx.setTitle(t('prescriptions.detail.heading', { number: p.number }));
    const med = medicaments.find((m) => m.id === p.medicament_id);
    const who = new Map(members.map((m) => [m.user_id, m.full_name]));
    ctx.root.append(
      facts([
        [t('prescriptions.fields.patient'), patientCell(patient)],
        [t('prescriptions.fields.medicament'), [refName(med) || `#${p.medicament_id}`, med?.controlled ? [' ', badge(t('prescriptions.controlled_mark'), 'warning')] : null]],
        [t('prescriptions.fields.dose'), `${amount(p.dose)} ${p.dose_unit}, ${routeName(p.route)}, ${p.frequency}`],
        [t('prescriptions.fields.quantity'), `${amount(p.quantity)} ${unitName(med?.unit)}`.trim()],
        [t('prescriptions.fields.prescribed_on'), p.prescribed_on],
        [t('prescriptions.fields.course'), `${p.start_on} – ${p.end_on ?? '…'}`],
        [t('prescriptions.fields.prescriber'), who.get(p.prescriber_id) ?? `#${p.prescriber_id}`],
        [t('prescriptions.fields.status'), statusBadge(p.status)],
        ...(p.cancel_reason ? [[t('prescriptions.fields.cancel_reason'), p.cancel_reason]] : []),
        [t('prescriptions.fields.version'), String(p.version)],
      ]),
    );

    if (p.status === 'active') {
      const form = createForm({
        id: `prescription-${p.id}`,
        fields: prescriptionFields(medicaments, p),
        sections: FIELD_SECTIONS(),
        submitLabel: t('common.save'),
        async onSubmit(values, f) {
          try {
            await put(`/prescriptions/${p.id}`, { version: p.version, ...inputOf(values) });
          } catch (err) {
            if (staleMessage(err, f, ctx, p.id) || showFieldError(err, f, values)) return;
            throw err;
          }
          flash('success', t('prescriptions.detail.saved'));
          ctx.navigate(`/prescriptions/${p.id}`, { replace: true });
        },
      });
      const complete = button(
        t('prescriptions.detail.complete'),
        async () => {
          const ok = await confirmDialog({
            title: t('prescriptions.detail.complete_title', { number: p.number }),
            message: t('prescriptions.detail.complete_confirm'),
            confirmLabel: t('prescriptions.detail.complete'),
          });
          if (!ok) return;
          try {
            await post(`/prescriptions/${p.id}/complete`, { version: p.version });
          } catch (err) {
            if (staleMessage(err, form, ctx, p.id)) return;
            form.showError(err);
            return;
          }
          flash('success', t('prescriptions.detail.completed'));
          ctx.navigate(`/prescriptions/${p.id}`, { replace: true });
        },
        { id: 'prescription-complete' },
      );
      const cancelForm = createForm({
        id: `prescription-cancel-${p.id}`,
        fields: [{ name: 'reason', label: t('prescriptions.fields.cancel_reason'), type: 'textarea', required: true, maxLength: 500, width: 'long' }],
        submitLabel: t('prescriptions.detail.cancel'),
        async onSubmit(values, f) {
          const ok = await confirmDialog({
            title: t('prescriptions.detail.cancel_title', { number: p.number }),
            message: t('prescriptions.detail.cancel_confirm'),
            confirmLabel: t('prescriptions.detail.cancel'),
            danger: true,
          });
          if (!ok) return;
          try {
            await post(`/prescriptions/${p.id}/cancel`, { version: p.version, reason: values.reason });
          } catch (err) {
            if (staleMessage(err, f, ctx, p.id)) return;
            throw err;
          }
          flash('success', t('prescriptions.detail.cancelled'));
          ctx.navigate(`/prescriptions/${p.id}`, { replace: true });
        },
      });
      cancelForm.element.querySelector('button[type="submit"]')?.classList.replace('btn-primary', 'btn-danger');
      ctx.root.append(
        h('h2', {}, t('prescriptions.detail.edit')),
        form.element,
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'prescription-close-title' },
          h('h2', { id: 'prescription-close-title' }, t('prescriptions.detail.close_title')),
          h('p', {}, t('prescriptions.detail.complete_intro')),
          h('p', {}, complete),
          h('p', {}, t('prescriptions.detail.cancel_intro')),
          cancelForm.element,
        ),
      );
    }

    ctx.root.append(
      h('h2', {}, t('prescriptions.detail.history')),
      dataTable({
        caption: t('prescriptions.detail.history'),
        className: 'history',
        columns: [
          { label: t('prescriptions.fields.version'), rowHeader: true, render: (v) => String(v.version) },
          { label: t('patients.edit.changed_at'), render: (v) => formatDateTime(v.changed_at) },
          { label: t('patients.edit.changed_by'), render: (v) => who.get(v.changed_by) ?? `#${v.changed_by}` },
          { label: t('patients.edit.change'), render: (v) => (has(`prescriptions.change.${v.change}`) ? t(`prescriptions.change.${v.change}`) : v.change) },
          { label: t('prescriptions.fields.medicament'), render: (v) => refName(medicaments.find((m) => m.id === v.prescription.medicament_id)) },
          { label: t('prescriptions.fields.dose'), render: (v) => `${amount(v.prescription.dose)} ${v.prescription.dose_unit}, ${routeName(v.prescription.route)}, ${v.prescription.frequency}` },
          { label: t('prescriptions.fields.quantity'), className: 'num', render: (v) => amount(v.prescription.quantity) },
          { label: t('prescriptions.fields.course'), render: (v) => `${v.prescription.start_on} – ${v.prescription.end_on ?? '…'}` },
          { label: t('prescriptions.fields.status'), render: (v) => statusBadge(v.prescription.status) },
        ],
        rows: history,
      }),
      h('p', {}, h('a', { href: `#${withQuery('/prescriptions', { patient: p.patient_id })}` }, t('prescriptions.patient.all'))),
    );
  },
});
