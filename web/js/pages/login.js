// Authorization: sign in with login and password, and for an account with a second factor the
// code of its authenticator app or one of its recovery codes, in the same field (asked for once
// the server answers `totp_required`).

import { registerPage } from '../router.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { createForm, totpField } from '../forms.js';
import { errorMessage } from '../api.js';
import { notice, pageHeading } from '../ui.js';
import { currentUser, routeAfterSignIn, signIn, takeExpiredNotice } from '../session.js';

/** A recovery code as shown (`xxxxx-xxxxx`), in any case, with or without the dash. */
const RECOVERY_CODE = /^[a-z2-9]{5}-?[a-z2-9]{5}$/i;

/** The second factor at sign-in: the app's 6 digits, or a recovery code (letters too). */
function signInCodeField() {
  return totpField({
    name: 'totp',
    label: t('login.totp'),
    hint: t('login.totp_hint'),
    inputmode: 'text',
    width: 'medium',
    validate: (value) => (/^\d{6}$/.test(value) || RECOVERY_CODE.test(value) ? null : t('login.totp_rules')),
  });
}

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

    /** The sign-in form; `withCode` adds the authenticator's code, keeping what was typed. */
    function buildForm({ login = '', password = '', withCode = false } = {}) {
      const form = createForm({
        id: 'login',
        fields: [
          { name: 'login', label: t('login.login'), required: true, autocomplete: 'username', spellcheck: 'false', maxLength: 64, value: login },
          { name: 'password', label: t('login.password'), type: 'password', required: true, autocomplete: 'current-password', value: password },
          ...(withCode ? [signInCodeField()] : []),
        ],
        submitLabel: t('login.submit'),
        pendingLabel: t('login.pending'),
        errorFields: { invalid_totp: 'totp' },
        async onSubmit(values) {
          try {
            await signIn(values.login, values.password, withCode ? values.totp : undefined);
          } catch (err) {
            failed(form, values, err);
            return;
          }
          ctx.navigate(routeAfterSignIn());
        },
      });
      form.field('login')?.setAttribute('autocapitalize', 'none');
      form.field('totp')?.setAttribute('autocapitalize', 'none');
      return form;
    }

    /** Says exactly what went wrong, keeping what is still right. */
    function failed(form, values, err) {
      if (err.code === 'totp_required') {
        // The password was right: ask for the code as well.
        const next = buildForm({ login: values.login, password: values.password, withCode: true });
        form.element.replaceWith(next.element);
        next.setFormNotice('info', t('login.totp_needed'));
        next.field('totp')?.focus();
        return;
      }
      if (err.code === 'invalid_totp') {
        // Beside the code field; the password stays (it was right).
        form.setValue('totp', '');
        form.showError(err);
        return;
      }
      // Keep the login, clear the password (and a code), and say what went wrong.
      form.setValue('password', '');
      form.setValue('totp', '');
      form.setFormError(errorMessage(err));
      const target = err.code === 'invalid_credentials' ? form.field('password') : form.field('login');
      target?.focus();
    }

    const first = buildForm();
    ctx.root.append(
      h(
        'section',
        { class: 'login-card' },
        pageHeading(t('login.title')),
        h('p', { class: 'lead' }, t('login.intro')),
        expired ? notice('warning', t('session.expired')) : null,
        first.element,
      ),
    );
  },
});
