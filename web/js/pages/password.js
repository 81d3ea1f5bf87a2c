// My account: the password and the second factor.
//
// Changing the password ends every session of the user, this one too: sign in again.
//
// The second factor is an authenticator app whose time-based codes signing in asks for as well.
// Setting it up takes two steps, so that a secret that never reached the phone locks nobody out:
// the server makes a secret, shown once (as a QR code and as text), and the app's first code
// turns it on. Turning it on also makes ten one-time recovery codes, shown this once (to copy,
// download or print): each signs in once in place of the app's code, for a lost phone. The page
// says how many are left and makes a new set with a current code. Turning the second factor off
// takes a current code, and is refused while a role requires it.
// While a role requires a second factor the user lacks, this is the only page the client shows
// (router.js), with the second factor first.
//
// A language switch draws the page again (router.js): the step of the second factor on screen
// (the key and QR code being set up, or the recovery codes just made) is kept in the page's state
// in memory (ctx.state, never any storage) and drawn again in the new language, so that nothing
// shown only once is lost. An answer that arrives after the switch is drawn on the page shown
// then. The recovery codes also outlive the session ending under the user while they are on
// screen (router.js `keepAcrossSignIn`, in memory): they are in force on the server already, so
// the same user signing in again in this tab sees them again; anyone else, or a sign-out, drops
// them. Signing in again with one of them spends it: it is then shown struck through, marked
// "used", and left out of the copy and the download, so that no list saved from here offers it
// (session.js knows the code typed; the mark is kept with the codes, in memory too).

import { HOME, mustEnrol, registerPage } from '../router.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { del, errorMessage, post, put } from '../api.js';
import { createForm, totpField } from '../forms.js';
import { announce, badge, button, flash, notice, pageHeading } from '../ui.js';
import { currentUser, endLocally, recoveryCodeOf, refreshUser, signedInWithRecoveryCode } from '../session.js';
import { qrSvg } from '../qr.js';

const MIN_PASSWORD = 10;

function passwordSection() {
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
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'password-h' },
    h('h2', { id: 'password-h' }, t('password.section')),
    h('p', { class: 'hint' }, t('password.intro')),
    form.element,
  );
}

/** A base32 secret in groups of four characters, as authenticator apps take it typed by hand. */
function groupedSecret(secret) {
  return (secret.match(/.{1,4}/g) ?? []).join(' ');
}

/** Recovery codes left at or below which the page asks for a new set. */
const FEW_RECOVERY_CODES = 3;

/**
 * The recovery codes as a text file (and the copy): a title, the account, the date, one code a
 * line; only the codes still usable.
 */
function recoveryCodesText(codes) {
  const user = currentUser();
  const lines = [
    t('totp.recovery.file_title', { login: user?.login ?? '' }),
    new Date().toISOString().slice(0, 10),
    '',
    ...codes,
    '',
    t('totp.recovery.file_hint'),
    '',
  ];
  return lines.join('\n');
}

/** One recovery code of the list; a spent one struck through, with a "used" label read out too. */
function recoveryCodeItem(code, spent) {
  if (!spent) return h('li', {}, h('code', {}, code));
  return h('li', { class: 'recovery-code-spent' }, h('code', {}, h('s', {}, code)), ' ', badge(t('totp.recovery.used'), 'muted'));
}

/**
 * The recovery codes just made, shown this once with a "save them now" warning, a copy and a
 * download button; `done` leaves the page. `spent`: those of them used to sign in since, marked
 * and left out of the copy and the download. The download's object URL goes into `urls`, for
 * the page to revoke when it goes.
 */
function recoveryCodesPanel(codes, { spent = [], done, doneLabel, urls }) {
  const text = recoveryCodesText(codes.filter((code) => !spent.includes(code)));
  const status = h('p', { class: 'hint', id: 'recovery-codes-copied', role: 'status' });
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = t('totp.recovery.copied');
    } catch {
      status.textContent = t('totp.recovery.copy_failed');
    }
  }
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  urls.add(url);
  const login = currentUser()?.login ?? 'account';
  return h(
    'div',
    { class: 'recovery-codes-panel', id: 'recovery-codes-panel' },
    notice('warning', t('totp.recovery.save_now')),
    h('p', {}, t('totp.recovery.about')),
    h('ol', { class: 'recovery-codes', id: 'recovery-codes' }, codes.map((code) => recoveryCodeItem(code, spent.includes(code)))),
    spent.length > 0 ? h('p', { class: 'hint', id: 'recovery-codes-spent' }, t('totp.recovery.spent', { count: spent.length })) : null,
    h(
      'p',
      { class: 'actions' },
      button(t('totp.recovery.copy'), copy, { id: 'recovery-codes-copy' }),
      ' ',
      h(
        'a',
        { href: url, download: `palreg-recovery-codes-${login}.txt`, class: 'btn btn-secondary', id: 'recovery-codes-download' },
        t('totp.recovery.download'),
      ),
      ' ',
      button(doneLabel, () => {
        URL.revokeObjectURL(url);
        urls.delete(url);
        done();
      }, { variant: 'primary', id: 'recovery-codes-done' }),
    ),
    status,
  );
}

function statusLine(totp) {
  return h(
    'p',
    { class: 'totp-status', id: 'totp-status' },
    totp?.enabled ? badge(t('totp.on'), 'ok') : badge(t('totp.off'), 'muted'),
    ' ',
    totp?.enabled ? t('totp.on_text') : t('totp.off_text'),
  );
}

/** Why recovery codes are on screen: the notice above them, and where "done" leads. */
const CODES_SHOWN = {
  enabled: { message: 'totp.enabled', doneLabel: 'totp.recovery.done' },
  // A role required the second factor: on to the home page with its full menu.
  enabled_required: { message: 'totp.enabled_required_done', doneLabel: 'totp.recovery.done_continue', home: true },
  renewed: { message: 'totp.recovery.renewed', doneLabel: 'totp.recovery.done' },
};

/**
 * Marks spent, in a step of recovery codes kept across a sign-in (`{ step: 'codes', codes,
 * spent }`), the code this session was signed in with, if it is one of them: the server took
 * it, and the list must not offer it any more. A sign-in with the app's code marks nothing.
 */
function markSpent(step) {
  const used = signedInWithRecoveryCode();
  if (step?.step !== 'codes' || !used) return;
  const code = step.codes.find((c) => recoveryCodeOf(c) === used);
  if (code && !step.spent?.includes(code)) step.spent = [...(step.spent ?? []), code];
}

/**
 * The second-factor section: its status, and setting it up or turning it off. The step that
 * must survive a language switch is `ctx.state.totp`: `{ step: 'enrolling', enrolment }` (the
 * key to scan, before the first code) or `{ step: 'codes', codes, kind, spent }` (recovery codes
 * on screen, `kind` a key of CODES_SHOWN, `spent` those used to sign in since: markSpent);
 * null while the page shows the account's status. Returns the section and the cleanup of the
 * page.
 */
function secondFactorSection(ctx) {
  const heading = h('h2', { id: 'totp-h', tabindex: '-1' }, t('totp.title'));
  const section = h('section', { class: 'card', id: 'totp', 'aria-labelledby': 'totp-h' });
  const urls = new Set();
  const kept = ctx.state;

  /**
   * Shows a step kept in the page's state, on the section shown now: an answer that arrives
   * after a language switch drew the page again lands on the new page, not the old one.
   */
  function show(step) {
    kept.totp = step;
    kept.drawStep(step);
  }

  /** Draws a kept step on this section; `again`: drawn anew in place (no focus, no announcement). */
  function drawStep(step, { again = false } = {}) {
    if (step.step === 'enrolling') drawEnrolling(step.enrolment, { again });
    else drawCodes(step, { again });
  }

  /** Draws the state the server reports (`GET /me`), with an optional message on top. */
  function draw(message = null) {
    const totp = currentUser()?.totp;
    if (totp?.enabled) drawOn(message);
    else drawOff(message);
  }

  /** Re-reads the account (the menu follows) and draws its state. */
  async function reload(message = null) {
    await refreshUser();
    if (currentUser()) draw(message);
  }

  function drawOff(message) {
    kept.totp = null;
    const totp = currentUser()?.totp;
    replace(
      section,
      heading,
      message,
      statusLine(totp),
      h('p', {}, t('totp.about')),
      totp?.required ? h('p', {}, h('strong', {}, t('totp.required_off'))) : null,
      h('p', {}, button(t('totp.start'), start, { variant: 'primary', id: 'totp-start' })),
    );
  }

  async function start(event) {
    event.currentTarget.disabled = true;
    let enrolment;
    try {
      enrolment = await post('/me/totp', {});
    } catch (err) {
      if (err.sessionExpired) return;
      if (err.code === 'totp_already_enabled') await reload(notice('info', errorMessage(err)));
      else drawOff(notice('error', errorMessage(err)));
      return;
    }
    show({ step: 'enrolling', enrolment });
  }

  function drawEnrolling(enrolment, { again = false } = {}) {
    const form = createForm({
      id: 'totp-confirm',
      fields: [totpField({ hint: t('totp.code_hint') })],
      submitLabel: t('totp.confirm'),
      secondary: [button(t('common.cancel'), () => drawOff(null))],
      errorFields: { invalid_totp: 'code' },
      async onSubmit(values) {
        const required = mustEnrol(currentUser());
        const answer = await post('/me/totp/confirm', { code: values.code });
        // Kept before anything else: a language switch from now on draws them again.
        const step = { step: 'codes', codes: answer.recovery_codes, kind: required ? 'enabled_required' : 'enabled' };
        kept.totp = step;
        await refreshUser();
        if (!currentUser()) return;
        // The recovery codes first (shown only now); then, when a role required the second
        // factor, on to the home page with its full menu.
        show(step);
      },
    });
    replace(
      section,
      heading,
      h(
        'ol',
        { class: 'totp-steps' },
        h('li', {}, h('p', {}, t('totp.step_app'))),
        h(
          'li',
          {},
          h('p', {}, t('totp.step_scan')),
          qrSvg(enrolment.qr, { label: t('totp.qr_label'), className: 'totp-qr', id: 'totp-qr' }),
          h('p', {}, t('totp.step_type')),
          h('p', {}, h('code', { class: 'totp-secret', id: 'totp-secret' }, groupedSecret(enrolment.secret))),
          h('p', { class: 'hint' }, t('totp.secret_hint')),
        ),
        h('li', {}, h('p', {}, t('totp.step_confirm')), form.element),
      ),
    );
    if (again) return;
    heading.focus();
    announce(t('totp.step_scan'));
  }

  /**
   * The recovery codes just made (`kind`: why, see CODES_SHOWN; `spent`: used since), this once,
   * and nothing else until they are saved.
   */
  function drawCodes({ codes, kind, spent = [] }, { again = false } = {}) {
    const { message, doneLabel, home } = CODES_SHOWN[kind];
    const done = home ? () => ctx.navigate(HOME) : () => draw();
    replace(
      section,
      heading,
      notice('success', t(message)),
      h('h3', {}, t('totp.recovery.title')),
      recoveryCodesPanel(codes, { spent, done, doneLabel: t(doneLabel), urls }),
    );
    if (again) return;
    heading.focus();
    const used = spent.length > 0 ? ` ${t('totp.recovery.spent', { count: spent.length })}` : '';
    announce(`${t(message)} ${t('totp.recovery.save_now')}${used}`);
  }

  /** How many recovery codes are left, and a new set with a current code. */
  function recoverySection(totp) {
    const left = totp?.recovery_codes_left ?? 0;
    const form = createForm({
      id: 'recovery-renew',
      fields: [totpField({ hint: t('totp.code_hint') })],
      submitLabel: t('totp.recovery.renew'),
      errorFields: { invalid_totp: 'code' },
      async onSubmit(values) {
        let answer;
        try {
          answer = await post('/me/totp/recovery-codes', { code: values.code });
        } catch (err) {
          // Turned off elsewhere meanwhile: show the account as it is now.
          if (err.status === 404) {
            await reload(notice('info', errorMessage(err)));
            return;
          }
          throw err;
        }
        const step = { step: 'codes', codes: answer.recovery_codes, kind: 'renewed' };
        kept.totp = step;
        await refreshUser();
        if (!currentUser()) return;
        show(step);
      },
    });
    return [
      h('h3', {}, t('totp.recovery.title')),
      h('p', { id: 'recovery-codes-left' }, t('totp.recovery.left', { count: left })),
      left <= FEW_RECOVERY_CODES ? notice('warning', t('totp.recovery.few', { count: left })) : null,
      h('p', {}, t('totp.recovery.renew_text')),
      form.element,
    ];
  }

  function drawOn(message) {
    kept.totp = null;
    const totp = currentUser()?.totp;
    let body;
    if (totp?.required) {
      body = [h('p', {}, t('totp.on_required'))];
    } else {
      const form = createForm({
        id: 'totp-remove',
        fields: [totpField({ hint: t('totp.code_hint') })],
        submitLabel: t('totp.remove'),
        errorFields: { invalid_totp: 'code' },
        async onSubmit(values) {
          try {
            await del('/me/totp', { body: { code: values.code } });
          } catch (err) {
            // Turned off elsewhere meanwhile (404), or a role came to require it (409): show
            // the account as it is now, with the reason.
            if (err.status === 404 || err.code === 'totp_required_by_role') {
              await reload(notice(err.status === 404 ? 'info' : 'warning', errorMessage(err)));
              return;
            }
            throw err;
          }
          await reload(notice('success', t('totp.removed')));
          announce(t('totp.removed'));
          heading.focus();
        },
      });
      body = [h('h3', {}, t('totp.remove_title')), h('p', {}, t('totp.remove_text')), form.element];
    }
    replace(
      section,
      heading,
      message,
      statusLine(totp),
      h('p', { class: 'hint' }, t('totp.lost_phone')),
      recoverySection(totp),
      body,
    );
  }

  // The newest section draws what an answer brings, wherever it was asked for.
  kept.drawStep = drawStep;
  // A step kept across a language switch, while it still holds: the key to scan while the
  // second factor is still off (turned on meanwhile in another tab: the status instead), the
  // recovery codes while it is on.
  const step = kept.totp;
  const enabled = Boolean(currentUser()?.totp?.enabled);
  if (step && (step.step === 'codes') === enabled) drawStep(step, { again: true });
  else draw();
  const cleanup = () => {
    for (const url of urls) URL.revokeObjectURL(url);
    urls.clear();
  };
  return { element: section, cleanup };
}

registerPage({
  route: '/password',
  titleKey: 'password.title',
  enrolment: true,
  menu: { section: 'account', order: 10, descriptionKey: 'home.shortcuts.password' },
  // Recovery codes not yet saved would be lost for good with the session: they wait for the
  // same user's sign-in (drawn while the second factor is still on, as after a language switch).
  keepAcrossSignIn: (state) => (state.totp?.step === 'codes' ? { totp: state.totp, totpFirst: state.totpFirst } : null),
  async render(ctx) {
    // Before any request: should the session end again, the codes are kept with the mark.
    markSpent(ctx.state.totp);
    // The second factor may have changed since sign-in (an administrator's reset, a role).
    const user = await refreshUser({ signal: ctx.signal });
    const required = mustEnrol(user);
    // The order the page was first drawn in stays across a language switch (the second factor
    // first while the recovery codes of a required enrolment are on screen).
    ctx.state.totpFirst ??= required;
    const totp = secondFactorSection(ctx);
    const password = passwordSection();
    ctx.root.append(
      pageHeading(t('password.title')),
      required ? notice('warning', t('totp.enrolment_required')) : h('p', { class: 'lead' }, t('password.lead')),
      ...(ctx.state.totpFirst ? [totp.element, password] : [password, totp.element]),
    );
    return totp.cleanup;
  },
});
