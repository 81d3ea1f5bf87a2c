// Administration → Users: the list with filters, registering a user, editing one (name, roles,
// institution), setting a new password, resetting a lost second factor, de-registering and
// re-registering.

import { registerPage } from '../router.js';
import { h, replace } from '../dom.js';
import { compare, formatDateTime, t } from '../i18n.js';
import { del, errorMessage, get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { announce, badge, button, confirmDialog, dataTable, facts, flash, linkButton, loading, notice, pageHeader } from '../ui.js';
import { loadBook, refName, refOptions } from '../refs.js';
import { roleDescription, roleName, sortRoles } from '../labels.js';

const LOGIN_PATTERN = /^[A-Za-z0-9._-]{3,64}$/;
const MIN_PASSWORD = 10;
const LIST = '/admin/users';

function isLocked(user) {
  return Boolean(user.locked_until && new Date(`${user.locked_until}Z`) > new Date());
}

function statusBadge(user) {
  if (!user.active) return badge(t('users.status.deregistered'), 'muted');
  if (isLocked(user)) return badge(t('users.status.locked'), 'warning');
  return badge(t('users.status.active'), 'ok');
}

/** Whether the user has a second factor (an authenticator app that signing in asks for). */
function totpBadge(user) {
  return user.totp_enabled ? badge(t('totp.on'), 'ok') : badge(t('totp.off'), 'muted');
}

function institutionLabel(institutions, id) {
  if (id === null || id === undefined) return t('users.region_wide');
  const entry = institutions.find((i) => i.id === id);
  return entry ? refName(entry) : `#${id}`;
}

const REGION_WIDE = 'none';

/**
 * The institutions an administrator may place users in: its own, or any, or none (region-wide),
 * which is an explicit choice, never a default.
 */
function institutionOptions(admin, institutions, current) {
  if (admin.institution) return [{ value: String(admin.institution.id), label: admin.institution.name }];
  return [
    { value: '', label: t('refs.choose') },
    ...refOptions(institutions, { keep: current }),
    { value: REGION_WIDE, label: t('users.region_wide_option') },
  ];
}

function institutionValue(id) {
  return id === null || id === undefined ? REGION_WIDE : String(id);
}

function parseInstitution(value) {
  return value === REGION_WIDE || value === '' ? null : Number.parseInt(value, 10);
}

function roleOptions(roles) {
  return sortRoles(roles).map((r) => ({ value: r.name, label: roleName(r.name), hint: roleDescription(r) }));
}

function passwordFields() {
  return [
    {
      name: 'password',
      label: t('users.fields.password'),
      type: 'password',
      required: true,
      minLength: MIN_PASSWORD,
      autocomplete: 'new-password',
      hint: t('password.rules', { count: MIN_PASSWORD }),
    },
    {
      name: 'password_repeat',
      label: t('users.fields.password_repeat'),
      type: 'password',
      required: true,
      autocomplete: 'new-password',
      validate: (value, values) => (value !== values.password ? t('validation.passwords_differ') : null),
    },
  ];
}

function backLink() {
  return h('p', { class: 'back' }, h('a', { href: `#${LIST}` }, `← ${t('users.back')}`));
}

async function renderList(ctx) {
  ctx.root.append(pageHeader(t('users.list.title'), [linkButton(`#${LIST}/new`, t('users.list.register'), { variant: 'primary' })]));
  const wait = loading();
  ctx.root.append(wait);
  const [users, institutions, roles] = await Promise.all([
    get('/admin/users', { signal: ctx.signal }),
    loadBook('institutions', { signal: ctx.signal }),
    get('/admin/roles', { signal: ctx.signal }),
  ]);
  wait.remove();

  const institutionChoices = [
    { value: '', label: t('users.filters.any_institution') },
    { value: 'none', label: t('users.region_wide') },
    ...refOptions(institutions.filter((i) => users.some((u) => u.institution_id === i.id))),
  ];
  const filters = createForm({
    id: 'users-filter',
    className: 'filters',
    fields: [
      { name: 'q', label: t('users.filters.search'), type: 'search', autocomplete: 'off' },
      ...(ctx.user.institution ? [] : [{ name: 'institution', label: t('users.filters.institution'), type: 'select', options: institutionChoices }]),
      {
        name: 'role',
        label: t('users.filters.role'),
        type: 'select',
        options: [{ value: '', label: t('users.filters.any_role') }, ...sortRoles(roles).map((r) => ({ value: r.name, label: roleName(r.name) }))],
      },
      {
        name: 'status',
        label: t('users.filters.status'),
        type: 'select',
        options: [
          { value: '', label: t('users.filters.any_status') },
          { value: 'active', label: t('users.status.active') },
          { value: 'locked', label: t('users.status.locked') },
          { value: 'deregistered', label: t('users.status.deregistered') },
        ],
      },
    ],
    submitLabel: null,
    onSubmit: () => {},
    onChange: (values) => show(values),
  });
  const count = h('p', { class: 'result-count', role: 'status' });
  const results = h('div');
  ctx.root.append(filters.element, count, results);

  function matches(user, values) {
    const q = (values.q ?? '').toLowerCase();
    if (q && !user.login.toLowerCase().includes(q) && !user.full_name.toLowerCase().includes(q)) return false;
    if (values.institution === 'none' && user.institution_id !== null) return false;
    if (values.institution && values.institution !== 'none' && String(user.institution_id) !== values.institution) return false;
    if (values.role && !user.roles.includes(values.role)) return false;
    if (values.status === 'active' && !user.active) return false;
    if (values.status === 'locked' && !(user.active && isLocked(user))) return false;
    if (values.status === 'deregistered' && user.active) return false;
    return true;
  }

  let shownFor = null;
  function show(values) {
    // The form reports `input` and then `change` (on leaving the field): drawing the table again
    // for the same filters would replace the link a click on it has just pressed.
    const key = JSON.stringify(values);
    if (key === shownFor) return;
    shownFor = key;
    const shown = users.filter((u) => matches(u, values)).sort((a, b) => compare(a.full_name, b.full_name));
    count.textContent = t('users.list.count', { shown: shown.length, count: users.length });
    replace(
      results,
      dataTable({
        caption: t('users.list.caption'),
        empty: t('users.list.empty'),
        rows: shown,
        columns: [
          { label: t('users.fields.full_name'), rowHeader: true, render: (u) => h('a', { href: `#${LIST}/${u.id}` }, u.full_name) },
          { label: t('users.fields.login'), render: (u) => h('code', {}, u.login) },
          { label: t('users.fields.institution'), render: (u) => institutionLabel(institutions, u.institution_id) },
          { label: t('users.fields.roles'), render: (u) => u.roles.map(roleName).join(', ') },
          { label: t('users.fields.status'), render: statusBadge },
          { label: t('users.fields.totp_short'), render: totpBadge },
          { label: t('users.fields.created'), className: 'nowrap', render: (u) => formatDateTime(u.created_at) },
        ],
      }),
    );
  }
  show(filters.values());
}

async function renderNew(ctx) {
  ctx.root.append(backLink(), pageHeader(t('users.new.title')));
  const [institutions, roles] = await Promise.all([loadBook('institutions', { signal: ctx.signal }), get('/admin/roles', { signal: ctx.signal })]);
  const form = createForm({
    id: 'user-new',
    fields: [
      {
        name: 'login',
        label: t('users.fields.login'),
        required: true,
        autocomplete: 'off',
        spellcheck: 'false',
        maxLength: 64,
        pattern: LOGIN_PATTERN,
        patternMessage: t('users.login_rules'),
        hint: t('users.login_rules'),
        width: 'medium',
      },
      { name: 'full_name', label: t('users.fields.full_name'), required: true, maxLength: 200, autocomplete: 'off' },
      {
        name: 'institution_id',
        label: t('users.fields.institution'),
        type: 'select',
        options: institutionOptions(ctx.user, institutions, null),
        value: ctx.user.institution ? String(ctx.user.institution.id) : '',
        required: true,
        parse: parseInstitution,
        hint: t('users.institution_hint'),
      },
      { name: 'roles', label: t('users.fields.roles'), type: 'checkboxes', required: true, options: roleOptions(roles), value: ['user'] },
      ...passwordFields(),
    ],
    sections: [
      { legend: t('users.sections.person'), fields: ['login', 'full_name', 'institution_id'] },
      { legend: t('users.sections.access'), fields: ['roles'] },
      { legend: t('users.sections.password'), fields: ['password', 'password_repeat'] },
    ],
    submitLabel: t('users.new.submit'),
    secondary: [linkButton(`#${LIST}`, t('common.cancel'))],
    async onSubmit(values) {
      const created = await post('/admin/users', {
        login: values.login,
        full_name: values.full_name,
        password: values.password,
        roles: values.roles,
        institution_id: values.institution_id,
      });
      flash('success', t('users.new.done', { login: created.login }));
      ctx.navigate(LIST);
    },
  });
  ctx.root.append(form.element);
}

async function renderEdit(ctx) {
  const id = Number.parseInt(ctx.params.id, 10);
  ctx.root.append(backLink());
  if (!Number.isSafeInteger(id)) {
    ctx.root.append(pageHeader(t('users.edit.title')), notice('error', t('errors.not_found')));
    return;
  }
  const [user, institutions, roles] = await Promise.all([
    get(`/admin/users/${id}`, { signal: ctx.signal }),
    loadBook('institutions', { signal: ctx.signal }),
    get('/admin/roles', { signal: ctx.signal }),
  ]);
  ctx.setTitle(t('users.edit.heading', { name: user.full_name }));
  const isSelf = user.id === ctx.user.id;
  const summary = h('div');
  function showSummary(current) {
    replace(
      summary,
      facts([
        [t('users.fields.login'), h('code', {}, current.login)],
        [t('users.fields.status'), statusBadge(current)],
        ...(isLocked(current) ? [[t('users.fields.locked_until'), formatDateTime(current.locked_until)]] : []),
        [t('users.fields.totp'), current.totp_enabled ? t('totp.on') : t('totp.off')],
        [t('users.fields.institution'), institutionLabel(institutions, current.institution_id)],
        [t('users.fields.created'), formatDateTime(current.created_at)],
        [t('users.fields.updated'), formatDateTime(current.updated_at)],
      ]),
    );
  }
  showSummary(user);

  const details = createForm({
    id: 'user-edit',
    fields: [
      { name: 'full_name', label: t('users.fields.full_name'), required: true, maxLength: 200, value: user.full_name, autocomplete: 'off' },
      {
        name: 'institution_id',
        label: t('users.fields.institution'),
        type: 'select',
        options: institutionOptions(ctx.user, institutions, user.institution_id),
        value: institutionValue(user.institution_id),
        required: true,
        parse: parseInstitution,
      },
      { name: 'roles', label: t('users.fields.roles'), type: 'checkboxes', required: true, options: roleOptions(roles), value: user.roles },
    ],
    submitLabel: t('common.save'),
    async onSubmit(values) {
      const updated = await put(`/admin/users/${id}`, values);
      showSummary(updated);
      details.setFormNotice('success', t('users.edit.saved'));
      announce(t('users.edit.saved'));
    },
  });

  const password = createForm({
    id: 'user-password',
    fields: passwordFields(),
    submitLabel: t('users.password.submit'),
    async onSubmit(values, form) {
      const updated = await put(`/admin/users/${id}`, { password: values.password });
      showSummary(updated);
      form.setValue('password', '');
      form.setValue('password_repeat', '');
      form.setFormNotice('success', t('users.password.done'));
      announce(t('users.password.done'));
    },
  });

  const registration = h('div', { class: 'form-alert' });
  async function deregister() {
    const ok = await confirmDialog({
      title: t('users.deregister.confirm_title', { name: user.full_name }),
      message: t('users.deregister.confirm_text'),
      confirmLabel: t('users.deregister.action'),
      danger: true,
    });
    if (!ok) return;
    try {
      await del(`/admin/users/${id}`);
      flash('success', t('users.deregister.done', { login: user.login }));
      ctx.navigate(`${LIST}/${id}`, { replace: true });
    } catch (err) {
      if (!err.sessionExpired) replace(registration, notice('error', errorMessage(err)));
    }
  }
  async function reregister() {
    try {
      await put(`/admin/users/${id}`, { active: true });
      flash('success', t('users.reregister.done', { login: user.login }));
      ctx.navigate(`${LIST}/${id}`, { replace: true });
    } catch (err) {
      if (!err.sessionExpired) replace(registration, notice('error', errorMessage(err)));
    }
  }
  const secondFactor = h('div', { class: 'form-alert' });
  async function resetTotp() {
    const ok = await confirmDialog({
      title: t('users.totp.confirm_title', { name: user.full_name }),
      message: t('users.totp.confirm_text'),
      confirmLabel: t('users.totp.reset'),
      danger: true,
    });
    if (!ok) return;
    try {
      await del(`/admin/users/${id}/totp`);
      flash('success', t('users.totp.done', { login: user.login }));
      ctx.navigate(`${LIST}/${id}`, { replace: true });
    } catch (err) {
      if (err.sessionExpired) return;
      // 404: reset meanwhile (by another administrator, or the user turned it off).
      replace(secondFactor, notice(err.status === 404 ? 'info' : 'error', err.status === 404 ? t('users.totp.none') : errorMessage(err)));
    }
  }
  const totpRequired = user.roles.some((name) => roles.find((r) => r.name === name)?.require_totp);
  let secondFactorBody;
  if (user.totp_enabled) {
    secondFactorBody = [h('p', {}, t('users.totp.text_on')), button(t('users.totp.reset'), resetTotp, { variant: 'danger', id: 'user-totp-reset' })];
  } else {
    secondFactorBody = [h('p', {}, totpRequired ? t('users.totp.text_off_required') : t('users.totp.text_off'))];
  }

  let registrationBody;
  if (!user.active) {
    registrationBody = [
      h('p', {}, t('users.reregister.text')),
      button(t('users.reregister.action'), reregister, { variant: 'primary' }),
    ];
  } else if (isSelf) {
    registrationBody = [h('p', {}, t('users.deregister.self'))];
  } else {
    registrationBody = [h('p', {}, t('users.deregister.text')), button(t('users.deregister.action'), deregister, { variant: 'danger' })];
  }

  ctx.root.append(
    pageHeader(t('users.edit.heading', { name: user.full_name })),
    summary,
    h('section', { class: 'card', 'aria-labelledby': 'user-details-h' }, h('h2', { id: 'user-details-h' }, t('users.sections.details')), details.element),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'user-password-h' },
      h('h2', { id: 'user-password-h' }, t('users.sections.set_password')),
      h('p', { class: 'hint' }, t('users.password.text')),
      password.element,
    ),
    h(
      'section',
      { class: ['card', user.totp_enabled ? 'card-danger' : null], 'aria-labelledby': 'user-totp-h' },
      h('h2', { id: 'user-totp-h' }, t('users.sections.totp')),
      secondFactor,
      secondFactorBody,
    ),
    h(
      'section',
      { class: ['card', user.active && !isSelf ? 'card-danger' : null], 'aria-labelledby': 'user-registration-h' },
      h('h2', { id: 'user-registration-h' }, t('users.sections.registration')),
      registration,
      registrationBody,
    ),
  );
}

registerPage({
  route: LIST,
  titleKey: 'users.list.title',
  permission: 'administration',
  menu: { section: 'admin', order: 10, labelKey: 'nav.users', descriptionKey: 'home.shortcuts.users' },
  render: renderList,
});
registerPage({ route: `${LIST}/new`, titleKey: 'users.new.title', permission: 'administration', render: renderNew });
registerPage({ route: `${LIST}/:id`, titleKey: 'users.edit.title', permission: 'administration', render: renderEdit });
