// Administration → Roles and permissions: RBAC is data. List roles with their permissions and
// holders, create a role, change its description, permissions and whether its holders need a
// second factor, delete one nobody holds.

import { registerPage } from '../router.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { del, errorMessage, get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { badge, button, confirmDialog, dataTable, flash, linkButton, notice, pageHeader } from '../ui.js';
import { permissionDescription, permissionName, roleDescription, roleName, sortRoles } from '../labels.js';
import { regionWide } from '../session.js';

const LIST = '/admin/roles';
const CODE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** The built-in administrator role keeps this permission (the server insists too). */
const LOCKED = { role: 'admin', permission: 'administration' };

/** The checkbox that makes a role require a second factor of its holders. */
function requireTotpField(value = false) {
  return { name: 'require_totp', label: t('roles.require_totp'), type: 'checkbox', value, hint: t('roles.require_totp_hint') };
}

function totpRequirement(role) {
  return role.require_totp ? badge(t('roles.totp_required'), 'warning') : h('span', { class: 'muted' }, t('roles.totp_optional'));
}

function backLink() {
  return h('p', { class: 'back' }, h('a', { href: `#${LIST}` }, `← ${t('roles.back')}`));
}

function permissionOptions(permissions, role = null) {
  return permissions.map((p) => ({
    value: p.name,
    label: permissionName(p.name),
    hint: permissionDescription(p),
    disabled: role?.name === LOCKED.role && p.name === LOCKED.permission,
  }));
}

async function load(ctx) {
  const [roles, permissions, users] = await Promise.all([
    get('/admin/roles', { signal: ctx.signal }),
    get('/admin/permissions', { signal: ctx.signal }),
    get('/admin/users', { signal: ctx.signal }),
  ]);
  const holders = new Map();
  for (const user of users) for (const role of user.roles) holders.set(role, (holders.get(role) ?? 0) + 1);
  return { roles, permissions, holders };
}

async function renderList(ctx) {
  const editable = regionWide();
  ctx.root.append(pageHeader(t('roles.list.title'), editable ? [linkButton(`#${LIST}/new`, t('roles.list.new'), { variant: 'primary' })] : []));
  const { roles, permissions, holders } = await load(ctx);
  const sorted = sortRoles(roles);
  ctx.root.append(
    h('p', { class: 'lead' }, t('roles.list.intro')),
    editable ? null : notice('info', t('roles.region_only')),
    dataTable({
      caption: t('roles.list.caption'),
      rows: sorted,
      columns: [
        {
          label: t('roles.fields.role'),
          rowHeader: true,
          render: (r) => [h('a', { href: `#${LIST}/${r.id}` }, roleName(r.name)), roleName(r.name) !== r.name ? h('span', { class: 'muted' }, ` (${r.name})`) : null],
        },
        { label: t('roles.fields.description'), render: roleDescription },
        {
          label: t('roles.fields.permissions'),
          render: (r) =>
            r.permissions.length
              ? h('ul', { class: 'inline-list' }, r.permissions.map((p) => h('li', {}, permissionName(p))))
              : h('span', { class: 'muted' }, t('roles.no_permissions')),
        },
        { label: t('roles.fields.require_totp'), render: totpRequirement },
        { label: t('roles.fields.holders'), className: 'num', render: (r) => String(holders.get(r.name) ?? 0) },
      ],
    }),
    h('h2', {}, t('roles.permissions.title')),
    dataTable({
      caption: t('roles.permissions.caption'),
      rows: permissions,
      columns: [
        { label: t('roles.permissions.name'), rowHeader: true, render: (p) => permissionName(p.name) },
        { label: t('roles.permissions.code'), render: (p) => h('code', {}, p.name) },
        { label: t('roles.fields.description'), render: permissionDescription },
      ],
    }),
  );
}

async function renderNew(ctx) {
  ctx.root.append(backLink(), pageHeader(t('roles.new.title')));
  if (!regionWide()) {
    ctx.root.append(notice('info', t('roles.region_only')));
    return;
  }
  const permissions = await get('/admin/permissions', { signal: ctx.signal });
  const form = createForm({
    id: 'role-new',
    fields: [
      {
        name: 'name',
        label: t('roles.fields.name'),
        required: true,
        maxLength: 64,
        pattern: CODE_PATTERN,
        patternMessage: t('refs.code_rules'),
        hint: t('roles.name_hint'),
        autocomplete: 'off',
        width: 'medium',
      },
      { name: 'description', label: t('roles.fields.description'), type: 'textarea', maxLength: 500 },
      { name: 'permissions', label: t('roles.fields.permissions'), type: 'checkboxes', options: permissionOptions(permissions) },
      requireTotpField(),
    ],
    submitLabel: t('roles.new.submit'),
    secondary: [linkButton(`#${LIST}`, t('common.cancel'))],
    async onSubmit(values) {
      const role = await post('/admin/roles', values);
      flash('success', t('roles.new.done', { name: role.name }));
      ctx.navigate(LIST);
    },
  });
  ctx.root.append(form.element);
}

async function renderEdit(ctx) {
  ctx.root.append(backLink());
  const { roles, permissions, holders } = await load(ctx);
  const role = roles.find((r) => String(r.id) === ctx.params.id);
  if (!role) {
    ctx.root.append(pageHeader(t('roles.edit.title')), notice('error', t('errors.not_found')));
    return;
  }
  const heading = t('roles.edit.heading', { name: roleName(role.name) });
  ctx.setTitle(heading);
  const holderCount = holders.get(role.name) ?? 0;
  if (!regionWide()) {
    ctx.root.append(
      pageHeader(heading),
      h('p', { class: 'lead' }, t('roles.edit.code', { name: role.name }), ' · ', t('roles.edit.holders', { count: holderCount })),
      notice('info', t('roles.region_only')),
      h('ul', { class: 'inline-list' }, role.permissions.map((p) => h('li', {}, permissionName(p)))),
    );
    return;
  }
  const locked = role.name === LOCKED.role;
  const form = createForm({
    id: 'role-edit',
    fields: [
      { name: 'description', label: t('roles.fields.description'), type: 'textarea', maxLength: 500, value: role.description },
      {
        name: 'permissions',
        label: t('roles.fields.permissions'),
        type: 'checkboxes',
        options: permissionOptions(permissions, role),
        value: role.permissions,
        hint: locked ? t('roles.admin_locked') : null,
      },
      requireTotpField(role.require_totp),
    ],
    submitLabel: t('common.save'),
    async onSubmit(values) {
      const wanted = new Set(values.permissions);
      if (locked) wanted.add(LOCKED.permission);
      await put(`/admin/roles/${role.id}`, { description: values.description, permissions: [...wanted], require_totp: values.require_totp });
      flash('success', t('roles.edit.saved', { name: roleName(role.name) }));
      ctx.navigate(LIST);
    },
  });

  const deletion = h('div', { class: 'form-alert' });
  async function remove() {
    const ok = await confirmDialog({
      title: t('roles.delete.confirm_title', { name: roleName(role.name) }),
      message: t('roles.delete.confirm_text'),
      confirmLabel: t('roles.delete.action'),
      danger: true,
    });
    if (!ok) return;
    try {
      await del(`/admin/roles/${role.id}`);
      flash('success', t('roles.delete.done', { name: role.name }));
      ctx.navigate(LIST);
    } catch (err) {
      if (!err.sessionExpired) replace(deletion, notice('error', err.code === 'in_use' ? t('roles.delete.in_use') : errorMessage(err)));
    }
  }
  let deleteBody;
  if (locked) deleteBody = h('p', {}, t('roles.delete.admin'));
  else if (holderCount > 0) {
    deleteBody = [h('p', {}, t('roles.delete.held', { count: holderCount })), button(t('roles.delete.action'), remove, { variant: 'danger' })];
  } else deleteBody = [h('p', {}, t('roles.delete.text')), button(t('roles.delete.action'), remove, { variant: 'danger' })];

  ctx.root.append(
    pageHeader(heading),
    h('p', { class: 'lead' }, t('roles.edit.code', { name: role.name }), ' · ', t('roles.edit.holders', { count: holderCount })),
    h('section', { class: 'card', 'aria-labelledby': 'role-edit-h' }, h('h2', { id: 'role-edit-h' }, t('roles.edit.section')), form.element),
    h(
      'section',
      { class: ['card', locked ? null : 'card-danger'], 'aria-labelledby': 'role-delete-h' },
      h('h2', { id: 'role-delete-h' }, t('roles.delete.section')),
      deletion,
      deleteBody,
    ),
  );
}

registerPage({
  route: LIST,
  titleKey: 'roles.list.title',
  permission: 'administration',
  menu: { section: 'admin', order: 20, labelKey: 'nav.roles', descriptionKey: 'home.shortcuts.roles' },
  render: renderList,
});
registerPage({ route: `${LIST}/new`, titleKey: 'roles.new.title', permission: 'administration', render: renderNew });
registerPage({ route: `${LIST}/:id`, titleKey: 'roles.edit.title', permission: 'administration', render: renderEdit });
