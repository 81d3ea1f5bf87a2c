// The medical record on the patient's page: dated observations (pain score, ECOG performance
// status, needs added or removed) and a free-text note, sealed in WASM under the institution key
// and bound to the patient's pseudonym and the observation (a random note_ref) before it is sent.
// Notes are opened here with the key of the version they were sealed under.

import { h } from '../dom.js';
import { formatDateTime, t } from '../i18n.js';
import { ApiError, errorMessage, get, post } from '../api.js';
import { createForm } from '../forms.js';
import { dataTable, flash, notice } from '../ui.js';
import { openInstitutionKeys } from '../keystore.js';
import { NOTE_PURPOSE } from '../passports.js';
import { loadBook, refName, refOptions } from '../refs.js';
import { today } from './prescriptions.js';

/** A random note_ref, chosen before sealing: the note is bound to it. */
function newNoteRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `obs-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

const scale = (from, to, label) => [{ value: '', label: t('observations.not_assessed') }, ...Array.from({ length: to - from + 1 }, (_, i) => ({ value: String(from + i), label: label(from + i) }))];

/** Opens an observation's note with the key of its version, or says why it cannot. */
function noteCell(o, keys, patient, institutionId) {
  if (!o.note) return '';
  const key = keys.get(o.note_key_version);
  if (!key) return h('span', { class: 'hint' }, t('observations.note_not_held', { version: o.note_key_version }));
  try {
    const text = key.openNote(o.note.sealed, NOTE_PURPOSE, patient.pseudonym, institutionId, o.note.note_ref);
    return h('span', { class: 'note-text', dataset: { sensitive: '' } }, text);
  } catch {
    return h('span', { class: 'hint' }, t('observations.note_unreadable'));
  }
}

/**
 * The patient's medical record section: the observations, newest first, and the form for a new
 * one. `key` is the institution's current key (notes are sealed with it), or null when the key
 * chain does not vouch for the newest version I hold (`untrusted`, an UntrustedKeyError, says
 * so: observations without a note are still saved); `who` maps user ids to names. A saved
 * observation reloads the page (its needs change the patient).
 */
export async function patientObservations(ctx, { patient, key, untrusted = null, who }) {
  const institutionId = ctx.user.institution.id;
  const section = h('section', { class: 'patient-observations', 'aria-labelledby': 'patient-observations-title' }, h('h2', { id: 'patient-observations-title' }, t('observations.title')));
  let list;
  let needs;
  try {
    [list, needs] = await Promise.all([get(`/patients/${patient.id}/observations`, { signal: ctx.signal }), loadBook('needs', { activeOnly: false, signal: ctx.signal })]);
  } catch (err) {
    if (err?.sessionExpired || err?.name === 'AbortError') throw err;
    section.append(notice('error', errorMessage(err)));
    return section;
  }
  const older = !key || list.some((o) => o.note && o.note_key_version !== key.version);
  const keys = older ? await openInstitutionKeys(ctx.user, { signal: ctx.signal }) : new Map([[key.version, key]]);
  const needName = new Map(needs.map((n) => [n.id, refName(n)]));
  const current = patient.record.needs ?? [];

  const fields = [
    { name: 'observed_on', label: t('observations.fields.observed_on'), type: 'date', required: true, value: today(), max: today() },
    { name: 'pain_score', label: t('observations.fields.pain_score'), type: 'select', parse: 'int-or-null', options: scale(0, 10, (n) => t(`observations.pain.${n === 0 ? 'none' : n <= 3 ? 'mild' : n <= 6 ? 'moderate' : 'severe'}`, { n })) },
    { name: 'ecog', label: t('observations.fields.ecog'), type: 'select', parse: 'int-or-null', width: 'long', options: scale(0, 5, (n) => `${n} — ${t(`observations.ecog.${n}`)}`) },
  ];
  const addable = refOptions(needs.filter((n) => !current.includes(n.id)), { keep: null });
  if (addable.length) fields.push({ name: 'needs_added', label: t('observations.fields.needs_added'), type: 'checkboxes', parse: 'int', columns: true, options: addable });
  if (current.length) {
    fields.push({ name: 'needs_removed', label: t('observations.fields.needs_removed'), type: 'checkboxes', parse: 'int', columns: true, options: current.map((id) => ({ value: String(id), label: needName.get(id) ?? `#${id}` })) });
  }
  fields.push({ name: 'note', label: t('observations.fields.note'), type: 'textarea', sensitive: true, maxLength: 4000, hint: t('observations.fields.note_hint') });

  const form = createForm({
    id: `observation-${patient.id}`,
    fields,
    submitLabel: t('observations.submit'),
    errorFields: { invalid_pain_score: 'pain_score', invalid_ecog: 'ecog', invalid_dates: 'observed_on', invalid_needs: 'needs_added', unknown_need: 'needs_added', invalid_note: 'note' },
    async onSubmit(values, f) {
      const body = {
        observed_on: values.observed_on,
        pain_score: values.pain_score,
        ecog: values.ecog,
        needs_added: values.needs_added ?? [],
        needs_removed: values.needs_removed ?? [],
      };
      if (values.note) {
        if (!key) {
          f.setFormError(untrusted.message);
          return;
        }
        const noteRef = newNoteRef();
        body.note = { note_ref: noteRef, sealed: key.sealNote(values.note, NOTE_PURPOSE, patient.pseudonym, institutionId, noteRef) };
      }
      if (body.pain_score === null && body.ecog === null && !body.needs_added.length && !body.needs_removed.length && !body.note) {
        f.setFormError(t('observations.empty'));
        return;
      }
      try {
        await post(`/patients/${patient.id}/observations`, body);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'stale_key_version') {
          f.setFormError(t('observations.key_changed'));
          return;
        }
        throw err;
      }
      flash('success', t('observations.saved'));
      ctx.navigate(`/patients/${patient.id}`, { replace: true });
    },
  });

  const needsCell = (o) => [
    ...o.needs_added.map((id) => `+ ${needName.get(id) ?? `#${id}`}`),
    ...o.needs_removed.map((id) => `− ${needName.get(id) ?? `#${id}`}`),
  ].join('; ');
  section.append(
    dataTable({
      caption: t('observations.caption', { count: list.length }),
      className: 'observations',
      columns: [
        { label: t('observations.fields.observed_on'), rowHeader: true, render: (o) => o.observed_on },
        { label: t('observations.columns.pain'), render: (o) => (o.pain_score ?? '—').toString() },
        { label: t('observations.columns.ecog'), render: (o) => (o.ecog ?? '—').toString() },
        { label: t('observations.columns.needs'), render: needsCell },
        { label: t('observations.fields.note'), render: (o) => noteCell(o, keys, patient, institutionId) },
        { label: t('observations.columns.recorded'), render: (o) => `${who.get(o.created_by) ?? `#${o.created_by}`}, ${formatDateTime(o.created_at)}` },
      ],
      rows: list,
      empty: t('observations.none'),
    }),
    h('h3', {}, t('observations.new_title')),
    form.element,
  );
  return section;
}
