// Display names of things the server names by code: roles, permissions, reference books.

import { has, t } from './i18n.js';

/** A role's name: the built-in ones translated, others as the administrator named them. */
export function roleName(name) {
  return has(`roles.builtin.${name}.name`) ? t(`roles.builtin.${name}.name`) : name;
}

/** A role's description: the built-in ones translated, others as written. */
export function roleDescription(role) {
  return has(`roles.builtin.${role.name}.description`) ? t(`roles.builtin.${role.name}.description`) : role.description;
}

/** A permission's name (`administration` -> "Administration"). */
export function permissionName(code) {
  return has(`permissions.names.${code}`) ? t(`permissions.names.${code}`) : code;
}

/** A permission's description, falling back to the server's text. */
export function permissionDescription(permission) {
  const key = `permissions.descriptions.${permission.name}`;
  return has(key) ? t(key) : permission.description;
}

/** A reference book's title (`care-forms` -> "Forms of care"). */
export function bookTitle(book) {
  return t(`refs.books.${book}.title`);
}

const BUILTIN_ORDER = ['user', 'admin', 'ministry'];

/** Roles in a stable, useful order: the built-in ones first (clinician, administrator, ministry). */
export function sortRoles(roles) {
  const rank = (r) => {
    const i = BUILTIN_ORDER.indexOf(r.name);
    return i === -1 ? BUILTIN_ORDER.length : i;
  };
  return [...roles].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}
