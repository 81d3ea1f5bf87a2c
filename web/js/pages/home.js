// Home: who is signed in, where, with which roles and permissions; shortcuts to allowed pages.

import { menuFor, registerPage } from '../router.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { facts, pageHeading } from '../ui.js';
import { permissionName, roleName } from '../labels.js';

registerPage({
  route: '/home',
  titleKey: 'home.title',
  menu: { section: 'main', order: 0 },
  render(ctx) {
    const { user } = ctx;
    const institution = user.institution
      ? h('span', {}, user.institution.name, ' ', h('span', { class: 'muted' }, `(${user.institution.code})`))
      : t('home.region_wide');
    const shortcuts = menuFor(user)
      .flatMap(({ items }) => items)
      .filter((item) => item.route !== '/home');
    ctx.root.append(
      pageHeading(t('home.title')),
      h('p', { class: 'lead' }, t('home.greeting', { name: user.full_name })),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'home-account' },
        h('h2', { id: 'home-account' }, t('home.account')),
        facts([
          [t('home.full_name'), user.full_name],
          [t('home.login'), h('code', {}, user.login)],
          [t('home.institution'), institution],
          [t('home.roles'), user.roles.map(roleName).join(', ') || '—'],
          [
            t('home.permissions'),
            user.permissions.length
              ? h('ul', { class: 'inline-list' }, user.permissions.map((p) => h('li', {}, permissionName(p))))
              : t('home.no_permissions'),
          ],
        ]),
      ),
      h(
        'section',
        { 'aria-labelledby': 'home-shortcuts' },
        h('h2', { id: 'home-shortcuts' }, t('home.shortcuts_title')),
        h(
          'ul',
          { class: 'shortcuts' },
          shortcuts.map((item) =>
            h(
              'li',
              {},
              h(
                'a',
                { class: 'shortcut', href: item.href },
                h('span', { class: 'shortcut-title' }, t(item.labelKey)),
                item.descriptionKey ? h('span', { class: 'shortcut-text' }, t(item.descriptionKey)) : null,
              ),
            ),
          ),
        ),
      ),
    );
  },
});
