// Authorization: sign in with login and password.

import { registerPage } from '../router.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { createForm } from '../forms.js';
import { errorMessage } from '../api.js';
import { notice, pageHeading } from '../ui.js';
import { currentUser, routeAfterSignIn, signIn, takeExpiredNotice } from '../session.js';

registerPage({
  route: '/login',
  titleKey: 'login.title',
  public: true,
  render(ctx) {
    if (currentUser()) {
      ctx.navigate(routeAfterSignIn(), { replace: true });
      return;
    }
    const expired = takeExpiredNotice();
    const form = createForm({
      id: 'login',
      fields: [
        { name: 'login', label: t('login.login'), required: true, autocomplete: 'username', spellcheck: 'false', maxLength: 64 },
        { name: 'password', label: t('login.password'), type: 'password', required: true, autocomplete: 'current-password' },
      ],
      submitLabel: t('login.submit'),
      pendingLabel: t('login.pending'),
      async onSubmit(values) {
        try {
          await signIn(values.login, values.password);
        } catch (err) {
          // Keep the login, clear the password, and say exactly what went wrong.
          form.setValue('password', '');
          form.setFormError(errorMessage(err));
          const target = err.code === 'invalid_credentials' ? form.field('password') : form.field('login');
          target?.focus();
          return;
        }
        ctx.navigate(routeAfterSignIn());
      },
    });
    ctx.root.append(
      h(
        'section',
        { class: 'login-card' },
        pageHeading(t('login.title')),
        h('p', { class: 'lead' }, t('login.intro')),
        expired ? notice('warning', t('session.expired')) : null,
        form.element,
      ),
    );
    form.field('login')?.setAttribute('autocapitalize', 'none');
  },
});
