// Patients: register a new one, search, open and edit. The passport (name, date of birth,
// address, documents…) is sealed in WASM with the institution key before it leaves the browser;
// the server sees only the pseudonymized record, the sealed passport and blind-index tokens.
// Only a key version the key chain vouches for seals or computes tokens (keystore.js): when the
// newest version I hold is not vouched for, nothing is registered and no passport is changed,
// while the patients already registered are still found and opened.

import { registerPage, withQuery } from '../router.js';
import { h } from '../dom.js';
import { formatDateTime, has, t } from '../i18n.js';
import { ApiError, get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { button, dataTable, facts, flash, linkButton, notice, pageHeader, pageHeading } from '../ui.js';
import { loadCrypto } from '../crypto.js';
import { UntrustedKeyError, openInstitutionKey, openInstitutionKeys, trustedInstitutionKeys } from '../keystore.js';
import { INDEX_BITS, birthYear, blindIndexes, indexToken, openPassport, openResults } from '../passports.js';
import { loadBook, refName, refOptions } from '../refs.js';
import { allowed } from '../router.js';
import { patientObservations } from './observations.js';
import { patientPrescriptions, today } from './prescriptions.js';

export { INDEX_BITS };
const PASSPORT_FIELDS = ['surname', 'first_name', 'patronymic', 'date_of_birth', 'sex', 'address', 'phone', 'snils', 'policy_number', 'notes'];
const STATUSES = ['registered', 'discharged', 'deceased'];
const PASSPORT_SEX = { F: 'female', M: 'male' };

/**
 * The institution key to seal with: `{ key, untrusted }`. `key` is null when the newest version I
 * hold is not vouched for by the key chain, and `untrusted` (an UntrustedKeyError) says so; the
 * versions I hold still open passports then. Null, with a notice pointing at the Keys page, when
 * I hold no key at all (or mine is not unlocked).
 */
async function institutionKeyOrNotice(ctx) {
  let key = null;
  try {
    key = await openInstitutionKey(ctx.user, { signal: ctx.signal });
  } catch (err) {
    if (err instanceof UntrustedKeyError) return { key: null, untrusted: err };
    if (err instanceof ApiError) throw err;
  }
  if (!key) {
    ctx.root.append(notice('warning', t('patients.key_needed'), h('p', {}, linkButton('#/keys', t('patients.go_to_keys'), { variant: 'primary' }))));
    return null;
  }
  return { key, untrusted: null };
}

/** The warning that the newest key version I hold is not vouched for, pointing at the Keys page. */
function untrustedNotice(err) {
  const box = notice('error', err.message, h('p', {}, linkButton('#/keys', t('patients.go_to_keys'), { variant: 'primary' })));
  box.id = 'key-chain-refused';
  return box;
}

function sexOptions() {
  return [
    { value: '', label: t('patients.choose') },
    { value: 'F', label: t('patients.sex.F') },
    { value: 'M', label: t('patients.sex.M') },
  ];
}

async function patientFields(ctx, { passport = {}, record = null } = {}) {
  const [diagnoses, careForms, districts, needs] = await Promise.all(
    ['diagnoses', 'care-forms', 'districts', 'needs'].map((b) => loadBook(b, { activeOnly: false, signal: ctx.signal })),
  );
  const diagnosisLabel = (d) => `${d.code} — ${refName(d)}`;
  const fields = [
    { name: 'surname', label: t('patients.fields.surname'), required: true, sensitive: true, maxLength: 100 },
    { name: 'first_name', label: t('patients.fields.first_name'), required: true, sensitive: true, maxLength: 100 },
    { name: 'patronymic', label: t('patients.fields.patronymic'), sensitive: true, maxLength: 100 },
    { name: 'date_of_birth', label: t('patients.fields.date_of_birth'), type: 'date', required: true, sensitive: true, max: today() },
    { name: 'sex', label: t('patients.fields.sex'), type: 'select', required: true, options: sexOptions(), sensitive: true },
    { name: 'address', label: t('patients.fields.address'), sensitive: true, width: 'long', maxLength: 300 },
    { name: 'phone', label: t('patients.fields.phone'), type: 'tel', sensitive: true, maxLength: 40 },
    { name: 'snils', label: t('patients.fields.snils'), sensitive: true, maxLength: 20, hint: t('patients.fields.snils_hint') },
    { name: 'policy_number', label: t('patients.fields.policy_number'), sensitive: true, maxLength: 30 },
    { name: 'notes', label: t('patients.fields.notes'), type: 'textarea', sensitive: true, maxLength: 2000 },
    {
      name: 'diagnosis_id',
      label: t('patients.fields.diagnosis'),
      type: 'select',
      required: true,
      parse: 'int',
      options: [{ value: '', label: t('patients.choose') }, ...diagnoses.filter((d) => d.active || d.id === record?.diagnosis_id).map((d) => ({ value: String(d.id), label: diagnosisLabel(d) }))],
    },
    { name: 'care_form_id', label: t('patients.fields.care_form'), type: 'select', parse: 'int-or-null', options: refOptions(careForms, { keep: record?.care_form_id, empty: t('patients.none') }) },
    { name: 'district_id', label: t('patients.fields.district'), type: 'select', parse: 'int-or-null', options: refOptions(districts, { keep: record?.district_id, empty: t('patients.none') }) },
    { name: 'status', label: t('patients.fields.status'), type: 'select', required: true, options: STATUSES.map((s) => ({ value: s, label: t(`patients.status.${s}`) })), disabled: !record },
    { name: 'registered_on', label: t('patients.fields.registered_on'), type: 'date', required: true },
    { name: 'discharged_on', label: t('patients.fields.discharged_on'), type: 'date' },
    { name: 'deceased_on', label: t('patients.fields.deceased_on'), type: 'date' },
    { name: 'needs', label: t('patients.fields.needs'), type: 'checkboxes', parse: 'int', columns: true, options: refOptions(needs, { keep: null }) },
  ];
  if (!record) {
    fields.splice(fields.findIndex((f) => f.name === 'discharged_on'), 2);
  }
  const values = {
    ...passport,
    diagnosis_id: record?.diagnosis_id ?? '',
    care_form_id: record?.care_form_id ?? '',
    district_id: record?.district_id ?? '',
    status: record?.status ?? 'registered',
    registered_on: record?.registered_on ?? today(),
    discharged_on: record?.discharged_on ?? '',
    deceased_on: record?.deceased_on ?? '',
    needs: (record?.needs ?? []).map(String),
    sex: record?.sex ?? '',
  };
  for (const f of fields) if (values[f.name] !== undefined) f.value = values[f.name];
  const sections = [
    { legend: t('patients.passport_section'), fields: PASSPORT_FIELDS },
    { legend: t('patients.record_section'), fields: fields.filter((f) => !PASSPORT_FIELDS.includes(f.name)).map((f) => f.name) },
  ];
  return { fields, sections, diagnoses };
}

/**
 * The passport and the record of the form's values. The passport starts from `stored` (the
 * opened passport, on the edit page) with the form's fields laid over it: fields of the format
 * this form does not show (`identity_document`, `contact_person`, client-crypto passport.rs)
 * survive an edit. A field the form shows and the user emptied is left out.
 */
function split(values, stored = {}) {
  // The passport document of client-crypto: sex is `male`/`female`, empty optional fields left out.
  const passport = { ...stored };
  for (const name of PASSPORT_FIELDS) {
    if (values[name]) passport[name] = values[name];
    else delete passport[name];
  }
  passport.sex = PASSPORT_SEX[values.sex];
  const record = {
    sex: values.sex,
    birth_year: birthYear(values.date_of_birth),
    district_id: values.district_id ?? null,
    diagnosis_id: values.diagnosis_id,
    care_form_id: values.care_form_id ?? null,
    status: values.status ?? 'registered',
    registered_on: values.registered_on,
    discharged_on: values.discharged_on || null,
    deceased_on: values.deceased_on || null,
    needs: values.needs ?? [],
  };
  return { passport, record };
}

/** A passport as comparable text (keys sorted). */
const canonical = (p) => JSON.stringify(Object.keys(p).sort().map((k) => [k, p[k]]));

const fullName = (p) => [p.surname, p.first_name, p.patronymic].filter(Boolean).join(' ');

/**
 * Says why a save was refused with 409 `stale_key_version`: the passport was sealed under a key
 * version that is no longer the current one. Holding a newer version by now (granted since the
 * page opened), reloading is enough; otherwise it cannot help: the key was rotated and a holder
 * must grant me the new version, on the Keys page.
 */
async function showStaleKey(ctx, key, form) {
  let newest = null;
  try {
    newest = await openInstitutionKey(ctx.user);
  } catch (err) {
    // Granted meanwhile: a newer version that the key chain does not vouch for.
    if (err instanceof UntrustedKeyError) {
      form.setFormError(err.message);
      return;
    }
  }
  if (newest && newest.version > key.version) {
    form.setFormError(t('errors.stale_key_version'));
    return;
  }
  form.setFormError(t('patients.key_rotated'));
  form.element.querySelector('.form-alert .notice-body')?.append(h('p', {}, linkButton('#/keys', t('patients.go_to_keys'), { variant: 'primary', id: 'patient-go-to-keys' })));
}

registerPage({
  route: '/patients/new',
  titleKey: 'patients.new.title',
  permission: 'patients',
  menu: { section: 'patients', order: 10, labelKey: 'patients.new.title', descriptionKey: 'home.shortcuts.patients_new' },
  async render(ctx) {
    ctx.root.append(pageHeading(t('patients.new.title')), h('p', { class: 'lead' }, t('patients.new.intro')));
    const held = await institutionKeyOrNotice(ctx);
    if (!held) return;
    // A key the chain does not vouch for would hand the passport and its blind indexes to
    // whoever planted it: no form at all.
    if (held.untrusted) {
      ctx.root.append(untrustedNotice(held.untrusted));
      return;
    }
    const { key } = held;
    const wasm = await loadCrypto();
    const institutionId = ctx.user.institution.id;
    const { fields, sections } = await patientFields(ctx);
    const form = createForm({
      id: 'patient-new',
      fields,
      sections,
      submitLabel: t('patients.new.submit'),
      errorFields: { invalid_sex: 'sex', invalid_birth_year: 'date_of_birth', inactive_diagnosis: 'diagnosis_id', inactive_care_form: 'care_form_id' },
      async onSubmit(values, f) {
        const { passport, record } = split(values);
        const pseudonym = wasm.newPseudonym();
        const sealed = key.sealPassport(JSON.stringify(passport), pseudonym, institutionId);
        let created;
        try {
          created = await post('/patients', { pseudonym, passport: sealed, blind_indexes: blindIndexes(key, passport), record });
        } catch (err) {
          if (err instanceof ApiError && err.code === 'stale_key_version') {
            await showStaleKey(ctx, key, f);
            return;
          }
          throw err;
        }
        flash('success', t('patients.new.created'));
        ctx.navigate(`/patients/${created.id}`);
      },
    });
    ctx.root.append(form.element);
  },
});

registerPage({
  route: '/patients',
  titleKey: 'patients.search.title',
  permission: 'patients',
  menu: { section: 'patients', order: 20, labelKey: 'patients.search.title', descriptionKey: 'home.shortcuts.patients_search' },
  async render(ctx) {
    ctx.root.append(pageHeader(t('patients.search.title'), [linkButton('#/patients/new', t('patients.new.title'), { variant: 'primary' })]));
    const held = await institutionKeyOrNotice(ctx);
    if (!held) return;
    if (held.untrusted) ctx.root.append(untrustedNotice(held.untrusted));
    const wasm = await loadCrypto();
    const institutionId = ctx.user.institution.id;
    const [diagnoses, careForms, districts, needs] = await Promise.all(
      ['diagnoses', 'care-forms', 'districts', 'needs'].map((b) => loadBook(b, { activeOnly: false, signal: ctx.signal })),
    );
    const diagnosisCode = new Map(diagnoses.map((d) => [d.id, d.code]));
    // Every key version I hold opens the passports sealed under it. While a key rotation is
    // unfinished, passports not yet re-encrypted carry blind indexes of an older version: the
    // search then sends the tokens of each held version (alternatives of the same field) that
    // the key chain vouches for — tokens under a planted key would tell its maker the names.
    const keys = await openInstitutionKeys(ctx.user, { signal: ctx.signal });
    const { passports_pending_rotation: pending } = await get(`/institutions/${institutionId}/members`, { signal: ctx.signal });
    const indexKeys = pending > 0 || held.untrusted ? [...(await trustedInstitutionKeys(ctx.user, { signal: ctx.signal })).values()].reverse() : [held.key];
    const results = h('div', { class: 'search-results' });
    let criteria = null;
    let shown = [];
    let total = 0;

    async function fetchPage(after) {
      const body = { ...criteria.filters, blind_indexes: criteria.tokens, limit: 50, after: after ?? null };
      const page = await post('/patients/search', body);
      total = page.total;
      // Opens each passport and drops the blind index's false positives (bench/wasm/browser.mjs
      // times this for 1,000 results).
      shown.push(...openResults(keys, page.items, institutionId, criteria.typed, wasm.normalizeForIndex));
      draw(page.next_after);
    }

    function draw(nextAfter) {
      // With a name typed, the server's total counts the blind index's false positives too:
      // only what opened and matched is counted then. Filters alone are exact.
      const caption = criteria.typed.length
        ? t('patients.search.caption', { count: shown.length })
        : t('patients.search.caption_of', { count: total, shown: shown.length });
      const table = dataTable({
        caption,
        columns: [
          { label: t('patients.fields.name'), rowHeader: true, render: (r) => h('a', { href: `#/patients/${r.item.id}` }, fullName(r.passport)) },
          { label: t('patients.fields.date_of_birth'), render: (r) => r.passport.date_of_birth },
          { label: t('patients.fields.diagnosis'), render: (r) => diagnosisCode.get(r.item.record.diagnosis_id) ?? '' },
          { label: t('patients.fields.status'), render: (r) => t(`patients.status.${r.item.record.status}`) },
        ],
        rows: shown,
        empty: t('patients.search.none'),
      });
      const more = nextAfter ? button(t('patients.search.next'), () => fetchPage(nextAfter).catch((err) => form.showError(err)), { id: 'search-next' }) : null;
      results.replaceChildren(table, more ?? '');
      results.dataset.done = 'true';
    }

    const any = { value: '', label: t('patients.any') };
    const blocks = [...new Set(diagnoses.map((d) => d.block))].sort();
    const age = (name) => ({ name, label: t(`patients.search.${name}`), type: 'number', parse: 'int-or-null', min: 0, max: 130, width: 'short' });
    const form = createForm({
      id: 'patient-search',
      fields: [
        { name: 'surname', label: t('patients.fields.surname'), sensitive: true },
        { name: 'date_of_birth', label: t('patients.fields.date_of_birth'), type: 'date', sensitive: true },
        { name: 'snils', label: t('patients.fields.snils'), sensitive: true },
        { name: 'policy_number', label: t('patients.fields.policy_number'), sensitive: true },
        { name: 'status', label: t('patients.fields.status'), type: 'select', options: [any, ...STATUSES.map((s) => ({ value: s, label: t(`patients.status.${s}`) }))] },
        { name: 'diagnosis_id', label: t('patients.fields.diagnosis'), type: 'select', parse: 'int-or-null', width: 'long', options: [any, ...diagnoses.map((d) => ({ value: String(d.id), label: `${d.code} — ${refName(d)}` }))] },
        { name: 'icd10_block', label: t('patients.search.icd10_block'), type: 'select', options: [any, ...blocks.map((b) => ({ value: b, label: b }))] },
        { name: 'care_form_id', label: t('patients.fields.care_form'), type: 'select', parse: 'int-or-null', options: refOptions(careForms, { empty: t('patients.any'), all: true }) },
        { name: 'district_id', label: t('patients.fields.district'), type: 'select', parse: 'int-or-null', options: refOptions(districts, { empty: t('patients.any'), all: true }) },
        { name: 'need_id', label: t('patients.search.need'), type: 'select', parse: 'int-or-null', options: refOptions(needs, { empty: t('patients.any'), all: true }) },
        { name: 'sex', label: t('patients.fields.sex'), type: 'select', options: [any, ...sexOptions().slice(1)] },
        age('age_from'),
        { ...age('age_to'), validate: (v, all) => (v !== null && all.age_from !== null && v < all.age_from ? t('patients.search.age_order') : null) },
        { name: 'registered_from', label: t('patients.search.registered_from'), type: 'date' },
        { name: 'registered_to', label: t('patients.search.registered_to'), type: 'date', validate: (v, all) => (v && all.registered_from && v < all.registered_from ? t('patients.search.period_order') : null) },
      ],
      sections: [
        { legend: t('patients.search.by_passport'), fields: ['surname', 'date_of_birth', 'snils', 'policy_number'] },
        { legend: t('patients.search.by_record'), fields: ['status', 'diagnosis_id', 'icd10_block', 'care_form_id', 'district_id', 'need_id', 'sex', 'age_from', 'age_to', 'registered_from', 'registered_to'] },
      ],
      submitLabel: t('patients.search.submit'),
      errorFields: { invalid_block: 'icd10_block' },
      async onSubmit(values, f) {
        const typed = ['surname', 'date_of_birth', 'snils', 'policy_number'].filter((n) => values[n]).map((n) => [n, values[n]]);
        const filters = {};
        for (const name of ['status', 'diagnosis_id', 'icd10_block', 'care_form_id', 'district_id', 'need_id', 'sex', 'age_from', 'age_to', 'registered_from', 'registered_to']) {
          if (values[name] !== null && values[name] !== '') filters[name] = values[name];
        }
        if (!typed.length && !Object.keys(filters).length) {
          f.setFormError(t('patients.search.need_field'));
          return;
        }
        if (values.date_of_birth) filters.birth_year = birthYear(values.date_of_birth);
        const tokens = indexKeys.flatMap((k) => typed.map(([n, v]) => indexToken(k, n, v)));
        criteria = { tokens, typed, filters };
        shown = [];
        delete results.dataset.done;
        await fetchPage(null);
      },
    });
    ctx.root.append(form.element, results);
  },
});

registerPage({
  route: '/patients/:id',
  titleKey: 'patients.edit.title',
  permission: 'patients',
  async render(ctx) {
    ctx.root.append(pageHeading(t('patients.edit.title')));
    const held = await institutionKeyOrNotice(ctx);
    if (!held) return;
    // `key` is null when the newest version I hold is not vouched for: the passport still
    // opens, the record can be saved, but a changed passport cannot be sealed.
    const { key, untrusted } = held;
    if (untrusted) ctx.root.append(untrustedNotice(untrusted));
    const institutionId = ctx.user.institution.id;
    const patient = await get(`/patients/${encodeURIComponent(ctx.params.id)}`, { signal: ctx.signal });
    // Sealed under an older key version until a rotation re-encrypts it; a save seals it anew
    // under the current one (`key`).
    const keys = patient.passport_key_version === key?.version ? key : await openInstitutionKeys(ctx.user, { signal: ctx.signal });
    const passport = openPassport(keys, patient, institutionId);
    ctx.root.querySelector('h1').textContent = fullName(passport);
    ctx.root.querySelector('h1').dataset.sensitive = '';
    const { fields, sections, diagnoses } = await patientFields(ctx, { passport, record: patient.record });
    let version = patient.version;
    const before = canonical(passport);
    const form = createForm({
      id: `patient-${patient.id}`,
      fields,
      sections,
      submitLabel: t('common.save'),
      errorFields: { invalid_sex: 'sex', invalid_birth_year: 'date_of_birth', inactive_diagnosis: 'diagnosis_id', invalid_dates: 'registered_on' },
      async onSubmit(values, f) {
        const { passport: next, record } = split(values, passport);
        const body = { version, record };
        if (canonical(next) !== before) {
          if (!key) {
            f.setFormError(untrusted.message);
            return;
          }
          body.passport = key.sealPassport(JSON.stringify(next), patient.pseudonym, institutionId);
          body.blind_indexes = blindIndexes(key, next);
        }
        try {
          await put(`/patients/${patient.id}`, body);
        } catch (err) {
          if (err instanceof ApiError && err.code === 'stale_version') {
            f.setFormError(t('errors.stale_version'));
            f.element.querySelector('.form-alert .notice-body')?.append(button(t('patients.edit.reload'), () => ctx.navigate(`/patients/${patient.id}`, { replace: true }), { id: 'patient-reload' }));
            return;
          }
          if (err instanceof ApiError && err.code === 'stale_key_version') {
            await showStaleKey(ctx, key, f);
            return;
          }
          throw err;
        }
        flash('success', t('patients.edit.saved'));
        ctx.navigate(`/patients/${patient.id}`, { replace: true });
      },
    });
    const [history, members] = await Promise.all([
      get(`/patients/${patient.id}/history`, { signal: ctx.signal }),
      get(`/institutions/${institutionId}/members`, { signal: ctx.signal }).then((r) => r.members, () => []),
    ]);
    const who = new Map(members.map((m) => [m.user_id, m.full_name]));
    const code = new Map(diagnoses.map((d) => [d.id, d.code]));
    const medical = allowed(ctx.user, 'medical_records');
    const observations = medical ? await patientObservations(ctx, { patient, key, untrusted, who }) : '';
    const prescriptions = medical ? await patientPrescriptions(ctx, patient.id) : '';
    ctx.root.append(
      facts([
        [t('patients.fields.pseudonym'), h('code', {}, patient.pseudonym)],
        [t('patients.fields.version'), String(patient.version)],
      ]),
      form.element,
      observations,
      prescriptions,
      h('h2', {}, t('patients.edit.history')),
      dataTable({
        caption: t('patients.edit.history'),
        className: 'history',
        columns: [
          { label: t('patients.fields.version'), rowHeader: true, render: (v) => String(v.version) },
          { label: t('patients.edit.changed_at'), render: (v) => formatDateTime(v.changed_at) },
          { label: t('patients.edit.changed_by'), render: (v) => who.get(v.changed_by) ?? `#${v.changed_by}` },
          { label: t('patients.edit.change'), render: (v) => (has(`patients.change.${v.change}`) ? t(`patients.change.${v.change}`) : v.change) },
          { label: t('patients.fields.diagnosis'), render: (v) => code.get(v.record.diagnosis_id) ?? '' },
          { label: t('patients.fields.status'), render: (v) => t(`patients.status.${v.record.status}`) },
        ],
        rows: history,
      }),
      // "Who opened this record?" (a patient or a family may ask): the audit log of this
      // patient, for whoever may read the audit log.
      allowed(ctx.user, 'administration')
        ? h('p', {}, linkButton(`#${withQuery('/admin/audit', { object_type: 'patient', object_id: patient.id })}`, t('patients.edit.access_log'), { id: 'patient-access-log' }))
        : '',
    );
  },
});
