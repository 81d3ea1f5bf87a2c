// Reports: the prescription report of the institution (`reporting`) and the summary report
// (`summary_reporting` across institutions, `reporting` for the own one), generated and signed
// by the server. The file is fetched with the session cookie and handed to the user as a blob:
// link (no token in an address, nothing inline for the CSP); beside it the report's Ed25519
// signature (the `X-Palreg-Signature` header), its `.sig` file and the server's public key, so
// the recipient can check the file offline (`palreg verify-report`).

import { allowed, registerPage } from '../router.js';
import { append, h } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { ApiError, download, get } from '../api.js';
import { createForm } from '../forms.js';
import { facts, notice, pageHeading } from '../ui.js';
import { loadBook, refName } from '../refs.js';
import { membersOf, prescriptionFilters, today } from './prescriptions.js';

const FORMATS = [
  { value: 'pdf', path: '/reports/summary.pdf' },
  { value: 'json', path: '/reports/summary.json' },
  { value: 'fhir', path: '/reports/summary.fhir.json' },
];

function firstOfMonth() {
  return `${today().slice(0, 8)}01`;
}

function size(bytes) {
  return bytes < 1024 ? t('reports.bytes', { count: bytes }) : t('reports.kib', { size: Math.round(bytes / 102.4) / 10 });
}

/** Object URLs made by a page, revoked when the user leaves it. */
function urlKeeper() {
  const urls = [];
  return {
    make(blob) {
      const url = URL.createObjectURL(blob);
      urls.push(url);
      return url;
    },
    revokeAll() {
      for (const url of urls.splice(0)) URL.revokeObjectURL(url);
    },
  };
}

/**
 * The result of a generated report: a download link for the file (clicked at once, so the
 * download starts), its SHA-256 and signature, and links to the `.sig` file and the public key.
 */
async function showResult(target, result, urls, ctx) {
  const signature = result.headers.get('X-Palreg-Signature') ?? '';
  const sha256 = result.headers.get('X-Palreg-Report-Sha256') ?? '';
  const fileLink = h('a', { href: urls.make(result.blob), download: result.filename, class: 'btn btn-primary', id: 'report-download' }, t('reports.result.download', { file: result.filename }));
  const links = [];
  if (sha256) {
    try {
      const sig = await download(`/reports/issued/${encodeURIComponent(sha256)}.sig`, { signal: ctx.signal });
      links.push(h('li', {}, h('a', { href: urls.make(sig.blob), download: `${result.filename}.sig`, id: 'report-sig-download' }, t('reports.result.sig'))));
    } catch (err) {
      if (err?.sessionExpired || err?.name === 'AbortError') throw err;
    }
  }
  let key = null;
  try {
    key = await get('/reports/public-key', { signal: ctx.signal });
    links.push(
      h('li', {}, h('a', { href: urls.make(new Blob([key.pem], { type: 'application/x-pem-file' })), download: 'palreg-report-signing-key.pem', id: 'report-key-download' }, t('reports.result.public_key'))),
    );
  } catch (err) {
    if (err?.sessionExpired || err?.name === 'AbortError') throw err;
  }
  const section = h(
    'section',
    { class: 'card report-result', 'aria-labelledby': 'report-result-title', dataset: { sha256 } },
    h('h2', { id: 'report-result-title', tabindex: '-1' }, t('reports.result.title')),
    h('p', {}, fileLink),
    facts([
      [t('reports.result.file'), h('code', {}, result.filename)],
      [t('reports.result.size'), size(result.blob.size)],
      [t('reports.result.sha256'), h('code', { class: 'report-code', id: 'report-sha256' }, sha256)],
      [t('reports.result.signature'), h('code', { class: 'report-code', id: 'report-signature' }, signature || '—')],
      ...(key ? [[t('reports.result.key'), h('code', { class: 'report-code', id: 'report-public-key' }, `${key.algorithm} ${key.public_key}`)]] : []),
    ]),
    h('ul', { class: 'inline-list report-links' }, links),
    h('p', { class: 'hint' }, t('reports.result.verify_hint'), ' ', h('code', {}, `palreg verify-report ${result.filename} ${result.filename}.sig --public-key palreg-report-signing-key.pem`)),
  );
  target.replaceChildren(section);
  section.querySelector('h2').focus();
  // Starts the download at once; the link stays for a second copy.
  fileLink.click();
}

function periodFields(query) {
  return [
    { name: 'from', label: t('reports.fields.from'), type: 'date', required: true, value: query.get('from') || firstOfMonth() },
    {
      name: 'to',
      label: t('reports.fields.to'),
      type: 'date',
      required: true,
      value: query.get('to') || today(),
      validate: (value, values) => (value && values.from && value < values.from ? t('reports.validation.period') : null),
    },
  ];
}

function langField() {
  return {
    name: 'lang',
    label: t('reports.fields.lang'),
    type: 'select',
    value: getLang(),
    options: [
      { value: 'en', label: 'English' },
      { value: 'ru', label: 'Русский' },
    ],
  };
}

async function generate(path, query, form, target, urls, ctx) {
  target.replaceChildren(h('p', { class: 'loading', role: 'status' }, t('reports.generating')));
  let result;
  try {
    result = await download(path, { query, signal: ctx.signal });
  } catch (err) {
    target.replaceChildren();
    if (err instanceof ApiError && err.code === 'invalid_dates') {
      form.setError('to', t('reports.validation.period_server'));
      form.setFormError(t('validation.summary', { count: 1 }));
      form.field('to')?.focus();
      return;
    }
    throw err;
  }
  await showResult(target, result, urls, ctx);
}

registerPage({
  route: '/reports/prescriptions',
  titleKey: 'reports.prescriptions.title',
  permission: 'reporting',
  menu: { section: 'reports', order: 10, labelKey: 'reports.prescriptions.title', descriptionKey: 'home.shortcuts.reports_prescriptions' },
  async render(ctx) {
    ctx.root.append(pageHeading(t('reports.prescriptions.title')), h('p', { class: 'lead' }, t('reports.prescriptions.intro')));
    if (!ctx.user.institution) {
      ctx.root.append(notice('warning', t('prescriptions.no_institution')));
      return undefined;
    }
    const urls = urlKeeper();
    const q = (name) => ctx.query.get(name) ?? '';
    const [medicaments, members] = await Promise.all([loadBook('medicaments', { signal: ctx.signal }), membersOf(ctx)]);
    const patient = /^\d+$/.test(q('patient')) ? q('patient') : null;
    const shared = prescriptionFilters(ctx.query, medicaments, members);
    const fields = [...periodFields(ctx.query), shared.medicament, shared.controlled, shared.status];
    if (shared.prescriber) fields.push(shared.prescriber);
    fields.push(langField());
    const target = h('div', { class: 'report-output', 'aria-live': 'polite' });
    const form = createForm({
      id: 'report-prescriptions',
      className: 'filters filters-wide',
      fields,
      submitLabel: t('reports.prescriptions.submit'),
      pendingLabel: t('reports.generating'),
      async onSubmit(values, f) {
        const query = {
          from: values.from,
          to: values.to,
          medicament_id: values.medicament || null,
          controlled: values.controlled === 'yes' ? 'true' : values.controlled === 'no' ? 'false' : null,
          status: values.status || null,
          prescriber_id: values.prescriber || null,
          patient_id: patient,
          lang: values.lang,
        };
        await generate('/reports/prescriptions.pdf', query, f, target, urls, ctx);
      },
    });
    append(ctx.root, [
      patient ? notice('info', t('reports.prescriptions.one_patient')) : null,
      h('section', { class: 'card card-wide', 'aria-label': t('reports.parameters') }, form.element),
      target,
    ]);
    return () => urls.revokeAll();
  },
});

registerPage({
  route: '/reports/summary',
  titleKey: 'reports.summary.title',
  permission: ['summary_reporting', 'reporting'],
  menu: { section: 'reports', order: 20, labelKey: 'reports.summary.title', descriptionKey: 'home.shortcuts.reports_summary' },
  async render(ctx) {
    ctx.root.append(pageHeading(t('reports.summary.title')), h('p', { class: 'lead' }, t('reports.summary.intro')));
    const acrossInstitutions = allowed(ctx.user, 'summary_reporting');
    if (!acrossInstitutions && !ctx.user.institution) {
      ctx.root.append(notice('warning', t('prescriptions.no_institution')));
      return undefined;
    }
    const urls = urlKeeper();
    const fields = periodFields(ctx.query);
    if (acrossInstitutions) {
      const institutions = await loadBook('institutions', { signal: ctx.signal });
      fields.push({
        name: 'institutions',
        label: t('reports.fields.institutions'),
        type: 'checkboxes',
        parse: 'int',
        columns: true,
        hint: t('reports.fields.institutions_hint'),
        options: institutions
          .filter((i) => i.active)
          .sort((a, b) => refName(a).localeCompare(refName(b)))
          .map((i) => ({ value: String(i.id), label: refName(i) })),
      });
    }
    fields.push(
      {
        name: 'format',
        label: t('reports.fields.format'),
        type: 'select',
        value: 'pdf',
        options: FORMATS.map((f) => ({ value: f.value, label: t(`reports.formats.${f.value}`) })),
      },
      langField(),
    );
    const target = h('div', { class: 'report-output', 'aria-live': 'polite' });
    const form = createForm({
      id: 'report-summary',
      fields,
      submitLabel: t('reports.summary.submit'),
      pendingLabel: t('reports.generating'),
      async onSubmit(values, f) {
        const format = FORMATS.find((x) => x.value === values.format) ?? FORMATS[0];
        const query = {
          from: values.from,
          to: values.to,
          institutions: acrossInstitutions ? (values.institutions ?? []).join(',') || null : null,
          lang: values.lang,
        };
        await generate(format.path, query, f, target, urls, ctx);
      },
    });
    append(ctx.root, [
      acrossInstitutions ? null : facts([[t('reports.fields.institution'), ctx.user.institution.name]]),
      h('section', { class: 'card', 'aria-label': t('reports.parameters') }, form.element),
      target,
    ]);
    return () => urls.revokeAll();
  },
});
