// Forms with a label on every field, inline validation messages tied to their fields
// (`aria-invalid`, `aria-describedby`), server errors mapped to the field they concern, and the
// submit button disabled while a request is pending.
//
//   const form = createForm({
//     id: 'user-new',                 // stable: names the form's draft (drafts.js)
//     fields: [{ name: 'login', label: t('users.fields.login'), required: true, … }],
//     submitLabel: t('common.save'),  // null: no submit button (a live filter form)
//     onSubmit: async (values, form) => { await post(…) },
//     errorFields: { login_taken: 'login' },  // or (err) => fieldName; defaults below
//   });
//   ctx.root.append(form.element);
//
// Field spec: name, label, type (text, password, number, search, email, textarea, select,
// checkbox, checkboxes, date, datetime-local), value, options [{value, label, disabled}],
// required, minLength, maxLength, pattern (RegExp) with patternMessage, validate(value, values)
// -> message|null, hint, autocomplete, inputmode, readOnly, disabled, width (short|medium|long),
// parse ('int' | 'int-or-null' | function), trim (default true except passwords), and
// `sensitive: true` for a field that will hold patient-identifying data in clear: it is marked
// `data-sensitive`, never autocompleted, and a kept draft holds it in memory only.

import { h } from './dom.js';
import { t } from './i18n.js';
import { errorMessage } from './api.js';
import { notice } from './ui.js';

/** Which field a server error code concerns, unless a form says otherwise. */
const DEFAULT_ERROR_FIELDS = {
  invalid_login: 'login',
  login_taken: 'login',
  weak_password: 'password',
  invalid_full_name: 'full_name',
  wrong_password: 'current_password',
  code_taken: 'code',
  invalid_code: 'code',
  invalid_icd10: 'code',
  invalid_block: 'block',
  invalid_atc: 'atc',
  invalid_kind: 'kind',
  invalid_name: 'name',
  role_required: 'roles',
  unknown_role: 'roles',
  unknown_institution: 'institution_id',
  role_exists: 'name',
  invalid_description: 'description',
  unknown_permission: 'permissions',
};

function parseValue(spec, raw) {
  if (spec.parse === 'int') return raw === '' ? null : Number.parseInt(raw, 10);
  if (spec.parse === 'int-or-null') return raw === '' || raw === null ? null : Number.parseInt(raw, 10);
  if (typeof spec.parse === 'function') return spec.parse(raw);
  return raw;
}

function buildControl(spec, id, describedBy) {
  const common = {
    id,
    name: spec.name,
    required: spec.required,
    readOnly: spec.readOnly,
    disabled: spec.disabled,
    'aria-describedby': describedBy || null,
    dataset: spec.sensitive ? { sensitive: '' } : {},
  };
  const width = spec.width ? `w-${spec.width}` : null;
  if (spec.type === 'textarea') {
    return h('textarea', { ...common, rows: spec.rows ?? 3, maxlength: spec.maxLength, class: ['input', width], value: spec.value ?? '' });
  }
  if (spec.type === 'select') {
    const select = h(
      'select',
      { ...common, class: ['input', width] },
      (spec.options ?? []).map((o) => h('option', { value: String(o.value ?? ''), disabled: o.disabled }, o.label)),
    );
    if (spec.value !== undefined && spec.value !== null) select.value = String(spec.value);
    return select;
  }
  const type = spec.type ?? 'text';
  return h('input', {
    ...common,
    type,
    class: ['input', width],
    value: spec.value ?? '',
    minlength: spec.minLength,
    maxlength: spec.maxLength,
    autocomplete: spec.sensitive ? 'off' : spec.autocomplete,
    spellcheck: spec.sensitive || type === 'password' ? 'false' : spec.spellcheck,
    inputmode: spec.inputmode,
    min: spec.min,
    max: spec.max,
  });
}

function buildField(formId, spec) {
  const id = `${formId}-${spec.name}`;
  const hintId = spec.hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const hint = spec.hint ? h('p', { class: 'hint', id: hintId }, spec.hint) : null;
  const error = h('p', { class: 'field-error', id: errorId, hidden: true });
  const required = spec.required
    ? h('span', { class: 'required' }, h('span', { 'aria-hidden': 'true' }, ' *'), h('span', { class: 'visually-hidden' }, ` ${t('forms.required')}`))
    : null;

  if (spec.type === 'checkbox') {
    const input = h('input', {
      type: 'checkbox',
      id,
      name: spec.name,
      value: 'true',
      checked: Boolean(spec.value),
      disabled: spec.disabled,
      'aria-describedby': hintId,
      dataset: spec.sensitive ? { sensitive: '' } : {},
    });
    const wrapper = h('div', { class: 'field field-checkbox' }, h('div', { class: 'check' }, input, h('label', { for: id }, spec.label)), hint, error);
    return { spec, wrapper, inputs: [input], focusTarget: input, error, hintId, errorId };
  }

  if (spec.type === 'checkboxes') {
    const legendId = `${id}-legend`;
    const selected = new Set((spec.value ?? []).map(String));
    const inputs = (spec.options ?? []).map((o, i) => {
      const optionId = `${id}-${i}`;
      const optionHintId = o.hint ? `${optionId}-hint` : null;
      const input = h('input', {
        type: 'checkbox',
        id: optionId,
        name: spec.name,
        value: String(o.value),
        checked: selected.has(String(o.value)),
        disabled: spec.disabled || o.disabled,
        'aria-describedby': optionHintId,
      });
      return {
        input,
        // The hint describes the option (aria-describedby) without being part of its name.
        node: h(
          'div',
          { class: 'check' },
          input,
          h('div', {}, h('label', { for: optionId }, o.label), o.hint ? h('span', { class: 'option-hint', id: optionHintId }, o.hint) : null),
        ),
      };
    });
    const fieldset = h(
      'fieldset',
      { class: 'field field-group', id, 'aria-describedby': hintId, dataset: spec.sensitive ? { sensitive: '' } : {} },
      h('legend', { id: legendId }, spec.label, required),
      hint,
      error,
      h('div', { class: ['checks', spec.columns ? 'checks-columns' : null] }, inputs.map((i) => i.node)),
    );
    return { spec, wrapper: fieldset, inputs: inputs.map((i) => i.input), focusTarget: inputs[0]?.input, error, hintId, errorId, group: fieldset };
  }

  const control = buildControl(spec, id, hintId);
  const wrapper = h('div', { class: 'field' }, h('label', { for: id }, spec.label, required), hint, error, control);
  return { spec, wrapper, inputs: [control], focusTarget: control, error, hintId, errorId };
}

/** The field's value as typed (trimmed, unless a password), before `parse`. */
function readRaw(field) {
  const { spec, inputs } = field;
  if (spec.type === 'checkbox') return inputs[0].checked;
  if (spec.type === 'checkboxes') return inputs.filter((i) => i.checked).map((i) => i.value);
  const raw = inputs[0].value;
  return spec.type === 'password' || spec.trim === false ? raw : raw.trim();
}

function readField(field) {
  const raw = readRaw(field);
  if (field.spec.type === 'checkbox') return raw;
  if (field.spec.type === 'checkboxes') return raw.map((v) => parseValue(field.spec, v));
  return parseValue(field.spec, raw);
}

function isEmpty(value) {
  return value === '' || value === null || value === undefined || (Array.isArray(value) && value.length === 0);
}

function validateField(field, values) {
  const { spec } = field;
  const raw = readRaw(field);
  if (spec.required && (isEmpty(raw) || (spec.type === 'checkbox' && !raw))) {
    return spec.type === 'checkboxes' ? t('validation.choose_one') : t('validation.required');
  }
  if (!isEmpty(raw) && typeof raw === 'string') {
    const length = [...raw].length;
    if (spec.minLength && length < spec.minLength) return t('validation.min_length', { count: spec.minLength });
    if (spec.maxLength && length > spec.maxLength) return t('validation.max_length', { count: spec.maxLength });
    if (spec.pattern && !spec.pattern.test(raw)) return spec.patternMessage ?? t('validation.pattern');
  }
  return spec.validate ? spec.validate(values[spec.name], values) : null;
}

/**
 * The spec of a field for an authenticator app's six-digit code (`123 456` is taken too: the
 * value comes without spaces). `spec` overrides the defaults (name `code`).
 */
export function totpField(spec = {}) {
  return {
    name: 'code',
    label: t('totp.code'),
    required: true,
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    spellcheck: 'false',
    width: 'short',
    parse: (raw) => raw.replace(/\s+/g, ''),
    validate: (value) => (/^\d{6}$/.test(value) ? null : t('totp.code_rules')),
    ...spec,
  };
}

/** Builds a form (see the top of this file). */
export function createForm({
  id,
  fields,
  submitLabel,
  pendingLabel,
  onSubmit,
  onChange,
  errorFields = {},
  secondary = [],
  className,
  sections,
}) {
  if (!id) throw new Error('createForm: id is required');
  const built = fields.map((spec) => buildField(id, spec));
  const byName = new Map(built.map((f) => [f.spec.name, f]));
  const alert = h('div', { class: 'form-alert' });
  const submit = submitLabel ? h('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel) : null;
  const actions = submit || secondary.length ? h('div', { class: 'form-actions' }, submit, secondary) : null;

  let body = built.map((f) => f.wrapper);
  if (sections) {
    // sections: [{ legend, fields: [names] }] groups fields under a fieldset each.
    body = sections.map((s) =>
      h('fieldset', { class: 'form-section' }, h('legend', {}, s.legend), s.fields.map((name) => byName.get(name).wrapper)),
    );
  }
  const element = h('form', { class: ['form', className], novalidate: true, dataset: { formId: id } }, alert, body, actions);
  let pending = false;

  const api = {
    element,
    field(name) {
      return byName.get(name)?.focusTarget ?? null;
    },
    values() {
      const values = {};
      for (const f of built) values[f.spec.name] = readField(f);
      return values;
    },
    setValue(name, value) {
      const f = byName.get(name);
      if (!f) return;
      if (f.spec.type === 'checkbox') f.inputs[0].checked = Boolean(value);
      else if (f.spec.type === 'checkboxes') {
        const set = new Set((value ?? []).map(String));
        for (const input of f.inputs) input.checked = set.has(input.value);
      } else f.inputs[0].value = value === null || value === undefined ? '' : String(value);
    },
    setError(name, message) {
      const f = byName.get(name);
      if (!f) return false;
      f.error.replaceChildren(h('span', { class: 'visually-hidden' }, `${t('forms.error_prefix')} `), message);
      f.error.hidden = false;
      const describedBy = [f.hintId, f.errorId].filter(Boolean).join(' ');
      if (f.group) {
        f.group.setAttribute('aria-describedby', describedBy);
        f.group.classList.add('invalid');
      }
      for (const input of f.inputs) {
        input.setAttribute('aria-invalid', 'true');
        if (!f.group) input.setAttribute('aria-describedby', describedBy);
      }
      f.wrapper.classList.add('invalid');
      return true;
    },
    clearErrors() {
      alert.replaceChildren();
      for (const f of built) {
        f.error.hidden = true;
        f.error.replaceChildren();
        f.wrapper.classList.remove('invalid');
        for (const input of f.inputs) {
          input.removeAttribute('aria-invalid');
          if (!f.group) {
            if (f.hintId) input.setAttribute('aria-describedby', f.hintId);
            else input.removeAttribute('aria-describedby');
          }
        }
        if (f.group) {
          f.group.classList.remove('invalid');
          if (f.hintId) f.group.setAttribute('aria-describedby', f.hintId);
          else f.group.removeAttribute('aria-describedby');
        }
      }
    },
    setFormError(message) {
      alert.replaceChildren(notice('error', message));
    },
    setFormNotice(kind, message) {
      alert.replaceChildren(notice(kind, message));
    },
    /** Shows a server error beside its field when it concerns one, else above the form. */
    showError(err) {
      if (err?.sessionExpired) return;
      const message = errorMessage(err);
      const mapped = typeof errorFields === 'function' ? errorFields(err) : errorFields[err?.code];
      const name = mapped ?? DEFAULT_ERROR_FIELDS[err?.code];
      if (name && byName.has(name) && api.setError(name, message)) {
        api.setFormError(t('validation.summary', { count: 1 }));
        byName.get(name).focusTarget?.focus();
      } else {
        api.setFormError(message);
        alert.querySelector('.notice')?.setAttribute('tabindex', '-1');
        alert.querySelector('.notice')?.focus();
      }
    },
    setPending(on) {
      pending = on;
      element.toggleAttribute('aria-busy', on);
      if (!submit) return;
      const hadFocus = document.activeElement === submit;
      submit.disabled = on;
      submit.textContent = on ? (pendingLabel ?? t('forms.pending')) : submitLabel;
      if (!on && hadFocus) submit.focus();
    },
    /** Validates in the browser; shows the messages and focuses the first bad field. */
    validate() {
      api.clearErrors();
      const values = api.values();
      const invalid = [];
      for (const f of built) {
        const message = validateField(f, values);
        if (message) {
          api.setError(f.spec.name, message);
          invalid.push(f);
        }
      }
      if (invalid.length) {
        api.setFormError(t('validation.summary', { count: invalid.length }));
        invalid[0].focusTarget?.focus();
        return null;
      }
      return values;
    },
  };

  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (pending || !onSubmit) return;
    const values = api.validate();
    if (!values) return;
    api.setPending(true);
    try {
      await onSubmit(values, api);
    } catch (err) {
      api.showError(err);
    } finally {
      if (element.isConnected) api.setPending(false);
    }
  });
  if (onChange) {
    element.addEventListener('input', () => onChange(api.values(), api));
    element.addEventListener('change', () => onChange(api.values(), api));
  }
  return api;
}
