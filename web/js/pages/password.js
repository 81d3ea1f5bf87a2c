// Change my password. The server ends every session of the user, this one too: sign in again.

import { registerPage } from '../router.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { put } from '../api.js';
import { createForm } from '../forms.js';
import { flash, pageHeading } from '../ui.js';
import { endLocally } from '../session.js';

const MIN_PASSWORD = 10;

registerPage({
  route: '/password',
  titleKey: 'password.title',
  menu: { section: 'account', order: 10, descriptionKey: 'home.shortcuts.password' },
  render(ctx) {
    const form = createForm({
      id: 'password',
      fields: [
        { name: 'current_password', label: t('password.current'), type: 'password', required: true, autocomplete: 'current-password' },
        {
          name: 'new_password',
          label: t('password.new'),
          type: 'password',
          required: true,
          minLength: MIN_PASSWORD,
          autocomplete: 'new-password',
          hint: t('password.rules', { count: MIN_PASSWORD }),
        },
        {
          name: 'new_password_repeat',
          label: t('password.repeat'),
          type: 'password',
          required: true,
          autocomplete: 'new-password',
          validate: (value, values) => (value !== values.new_password ? t('validation.passwords_differ') : null),
        },
      ],
      submitLabel: t('password.submit'),
      errorFields: { weak_password: 'new_password' },
      async onSubmit(values) {
        await put('/me/password', { current_password: values.current_password, new_password: values.new_password });
        flash('success', t('password.changed'));
        endLocally();
      },
    });
    ctx.root.append(pageHeading(t('password.title')), h('p', { class: 'lead' }, t('password.intro')), form.element);
  },
});
