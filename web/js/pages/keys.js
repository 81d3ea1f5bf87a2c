// My keys and the institution key. At first sign-in a clinician makes a key pair (in WASM),
// protects it with a passphrase (the wrapped key file is kept in this browser and offered as a
// download) and publishes the public key. Later visits unlock it with the passphrase, or import
// a key file. The institution key is created once, by the first clinician; colleagues who
// published a key wait until a holder grants it, after comparing fingerprints aloud: the
// fingerprints shown are computed here from the public keys a grant wraps to (members.js). A
// clinician who forgot the passphrase makes a new key pair in place of the stored one and is
// granted again. A key pair is made only while this tab may use the browser's key store (not
// after another tab upgraded it, keystore.js); one published but then not kept stays on the page,
// with its key file to download.
//
// An administrator who holds the current key rotates it (rotation.js): after seeing the holders
// and their fingerprints, a new version is wrapped to each of them, every passport is
// re-encrypted here and then every observation note re-sealed, with a progress bar and a Cancel
// button. What is left is counted by the server, so a cancelled run or a closed tab is continued
// from this page. The run belongs to the page, not to one drawing of it: a language switch draws
// the page again around the same run (kept in ctx.state, in memory), leaving the page stops it.
//
// Every key version I hold is listed with its fingerprint and the verdict on it (keystore.js):
// remembered by this browser (pinned), the oldest trusted on first use (its fingerprint is what
// colleagues compare), or vouched for by the one before it. A version that is not trusted is a
// loud warning, and nothing is sealed, granted or rotated under it. A version made before links
// were kept can be vouched for here, by a holder of the version before it, after comparing its
// fingerprint with the colleague who made it; one that nothing vouches for in this browser (a new
// oldest version where others were known, or one after a version I do not hold or do not trust)
// can be trusted by hand, after the same comparison. A replaced key (`key_changed`) or a broken
// link has no way out here: the administrator must hear of it.

import { allowed, registerPage } from '../router.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { get, post, put } from '../api.js';
import { createForm } from '../forms.js';
import { announce, badge, button, confirmDialog, dataTable, facts, notice, pageHeading } from '../ui.js';
import { loadCrypto } from '../crypto.js';
import { KeyStoreOutdatedError, UntrustedKeyError, keyChainStatus, keyStoreReady, keysInUseUntil, pinVersion, setUnlocked, storeKeyFile, storedKeyFile, unlockedPair } from '../keystore.js';
import { MemberKeyError, checkMemberKey, trustedFingerprint } from '../members.js';
import { checkedHolders, createNextVersion, reencryptNotes, reencryptPassports } from '../rotation.js';

const MIN_PASSPHRASE = 10;

/** The re-encryption running in this tab, if any (startRun): one at a time. */
let running = null;

/**
 * Starts re-encrypting the passports left under older versions, then re-sealing the notes (with
 * the `medical_records` permission). The run outlives the drawing of the page that started it:
 * it stops when cancelled or when `leave` aborts (ctx.stateSignal: the user left the page), not
 * on a language switch. A Cancel (or the page left) that cuts short a request, even before the
 * first progress report, is a cancellation, not an error. The keys stay in use until the run has
 * ended (keysInUseUntil): a sign-out leaves the page, and frees them only then. The drawing shown
 * follows the run through `run.view` (`{ progress(), finished() }`, or null while none is).
 * Returns the run:
 * - `created`: the version just made (its message stays above the progress), or null;
 * - `stage`: 'passports', then 'notes'; `progress`: the last report, `{ message, done, total,
 *   skipped }`, or null; `cancelled`: the Cancel button was pressed (`cancel()`);
 * - `outcome`: at the end, `{ result, noteResult }`; `ended`: a promise of the end.
 * A run started while the one before winds down (stopped as the page was left) waits for it:
 * two runs would race on the same patients.
 */
function startRun(user, leave, created) {
  const stop = new AbortController();
  const previous = running;
  const run = {
    created,
    stage: 'passports',
    progress: null,
    cancelled: false,
    outcome: null,
    view: null,
    // Said to screen readers already (the page's business): the stage started last (its
    // heading), the outcome.
    announced: null,
    said: false,
    cancel() {
      run.cancelled = true;
      stop.abort();
    },
  };
  const report = (message) => (state) => {
    run.progress = { message, ...state };
    run.view?.progress();
  };
  run.ended = (async () => {
    const onLeave = () => stop.abort();
    if (leave.aborted) stop.abort();
    leave.addEventListener('abort', onLeave);
    const warnUnload = (event) => event.preventDefault();
    window.addEventListener('beforeunload', warnUnload);
    let result = { status: 'cancelled', done: 0, total: 0, skipped: [] };
    let noteResult = null;
    try {
      await previous?.ended;
      if (!stop.signal.aborted) {
        result = await reencryptPassports({ user, signal: stop.signal, onProgress: report('keys.rotation_count') });
        if (result.status === 'done' && allowed(user, 'medical_records')) {
          run.stage = 'notes';
          run.view?.progress();
          noteResult = await reencryptNotes({ user, signal: stop.signal, onProgress: report('keys.rotation_count_notes') });
          if (noteResult.status !== 'done') result = { ...result, status: noteResult.status };
        }
      }
    } catch (err) {
      // A request our own Cancel (or leaving the page) cut short: the run stopped, as asked.
      if (stop.signal.aborted && err?.name === 'AbortError') result = { ...result, status: 'cancelled' };
      else result = { ...result, error: err };
    } finally {
      leave.removeEventListener('abort', onLeave);
      window.removeEventListener('beforeunload', warnUnload);
      if (running === run) running = null;
    }
    run.outcome = { result, noteResult };
    run.view?.finished();
  })();
  keysInUseUntil(run.ended);
  running = run;
  return run;
}

function downloadLink(login, json) {
  const url = URL.createObjectURL(new Blob([json], { type: 'application/json' }));
  return h('a', { href: url, download: `palreg-key-${login}.json`, class: 'btn btn-secondary', id: 'key-download' }, t('keys.download'));
}

registerPage({
  route: '/keys',
  titleKey: 'keys.title',
  permission: 'patients',
  menu: { section: 'keys', order: 10, descriptionKey: 'home.shortcuts.keys' },
  async render(ctx) {
    const { user } = ctx;
    const body = h('div', { class: 'keys' });
    ctx.root.append(pageHeading(t('keys.title')), h('p', { class: 'lead' }, t('keys.intro')), body);
    const wasm = await loadCrypto();
    // A new key pair published but not kept in this browser (keyPairForm): its key file stays
    // on the page (in memory, ctx.state) across a language switch, until it is downloaded.
    const unstored = ctx.state.unstoredKeyFile ?? null;
    let keyFile = unstored ?? (await storedKeyFile(user.login));
    let justCreated = Boolean(unstored);

    /** My public key as the server has it (null: none published, or no institution to ask). */
    async function publishedKey() {
      const institutionId = user.institution?.id;
      if (!institutionId) return null;
      const info = await get(`/institutions/${institutionId}/members`, { signal: ctx.signal });
      return info.members.find((m) => m.user_id === user.id)?.public_key ?? null;
    }

    /**
     * Publishes the key unless the server has it already. Replacing another published key drops
     * my envelopes (colleagues must grant the institution key again): that needs a confirmation,
     * unless the user gave it already (`confirmed`: a new pair for a forgotten passphrase).
     * Resolves to false when the user declines.
     */
    async function publish(pair, { fresh = false, confirmed = false } = {}) {
      const current = fresh ? null : await publishedKey();
      if (current === pair.publicKey) return true;
      if (current && !confirmed) {
        const ok = await confirmDialog({
          title: t('keys.replace_title'),
          message: t('keys.replace_confirm'),
          confirmLabel: t('keys.replace_button'),
          danger: true,
        });
        if (!ok) return false;
      }
      await put('/me/public-key', { public_key: pair.publicKey });
      return true;
    }

    /**
     * The form that makes a key pair: generated in WASM, protected by the passphrase, published,
     * and kept in this browser in place of any stored key file. `replacing`: the user has agreed
     * already to lose access to the institution key (a forgotten passphrase), so publishing asks
     * no more. The pins of the institution key's versions (keystore.js) stay: they are about the
     * institution's keys, which a colleague grants again.
     */
    function keyPairForm(id, { replacing = false } = {}) {
      return createForm({
        id,
        fields: [
          { name: 'passphrase', label: t('keys.passphrase'), type: 'password', required: true, minLength: MIN_PASSPHRASE, autocomplete: 'new-password', hint: t('keys.passphrase_hint', { count: MIN_PASSPHRASE }) },
          {
            name: 'passphrase_repeat',
            label: t('keys.passphrase_repeat'),
            type: 'password',
            required: true,
            autocomplete: 'new-password',
            validate: (value, values) => (value !== values.passphrase ? t('keys.passphrases_differ') : null),
          },
        ],
        submitLabel: t('keys.create'),
        async onSubmit(values) {
          // A key store this tab may not use any more (palreg was updated in another tab) is
          // said before anything is published: the new key must be kept here.
          await keyStoreReady();
          const pair = wasm.UserKeyPair.generate();
          const json = pair.exportKeyFile(values.passphrase);
          if (!(await publish(pair, { confirmed: replacing }))) {
            pair.free();
            return;
          }
          keyFile = json;
          setUnlocked(user.id, pair);
          justCreated = true;
          try {
            await storeKeyFile(user.login, json);
          } catch (err) {
            // Published, but not kept (the store was upgraded by another tab meanwhile): the
            // key file stays in this page to download, or the new key would be lost.
            if (!err?.forUser) console.error(err);
            ctx.state.unstoredKeyFile = json;
            await draw(null, null, [notice('error', t('keys.not_stored'))]);
            return;
          }
          await draw();
        },
      });
    }

    /**
     * A forgotten passphrase cannot be recovered: the way out is a new key pair in place of the
     * stored one, and a colleague's grant again. Its form appears only after a confirmation that
     * says what it costs.
     */
    function forgottenSection() {
      const start = h('p', {});
      start.append(
        button(
          t('keys.new_pair'),
          async () => {
            const ok = await confirmDialog({
              title: t('keys.new_pair_title'),
              message: t('keys.new_pair_confirm'),
              confirmLabel: t('keys.new_pair_button'),
              danger: true,
            });
            if (!ok) return;
            const form = keyPairForm('key-replace', { replacing: true });
            start.replaceWith(form.element);
            form.field('passphrase')?.focus();
          },
          { variant: 'danger', id: 'key-new-pair' },
        ),
      );
      return h('section', { id: 'key-forgotten' }, h('h2', {}, t('keys.forgot_title')), h('p', {}, t('keys.forgot_intro')), start);
    }

    function passphraseForms() {
      const nodes = [];
      if (keyFile) {
        const unlock = createForm({
          id: 'key-unlock',
          fields: [{ name: 'passphrase', label: t('keys.passphrase'), type: 'password', required: true, autocomplete: 'current-password' }],
          submitLabel: t('keys.unlock'),
          async onSubmit(values, form) {
            let pair;
            try {
              pair = wasm.UserKeyPair.importKeyFile(keyFile, values.passphrase);
            } catch {
              form.setError('passphrase', t('keys.wrong_passphrase'));
              return;
            }
            if (!(await publish(pair))) {
              pair.free();
              return;
            }
            setUnlocked(user.id, pair);
            await draw();
          },
        });
        nodes.push(h('section', {}, h('h2', {}, t('keys.unlock_title')), unlock.element), forgottenSection());
      } else {
        const create = keyPairForm('key-create');
        nodes.push(h('section', {}, h('h2', {}, t('keys.create_title')), h('p', {}, t('keys.create_intro')), create.element));
      }
      let fileText = null;
      const importForm = createForm({
        id: 'key-import',
        fields: [
          { name: 'file', label: t('keys.import_file'), type: 'file' },
          { name: 'passphrase', label: t('keys.passphrase'), type: 'password', required: true, autocomplete: 'current-password' },
        ],
        submitLabel: t('keys.import'),
        async onSubmit(values, form) {
          if (!fileText) {
            form.setError('file', t('validation.required'));
            return;
          }
          let pair;
          try {
            pair = wasm.UserKeyPair.importKeyFile(fileText, values.passphrase);
          } catch {
            form.setFormError(t('keys.import_failed'));
            return;
          }
          if (!(await publish(pair))) {
            pair.free();
            return;
          }
          await storeKeyFile(user.login, fileText);
          keyFile = fileText;
          setUnlocked(user.id, pair);
          await draw();
        },
      });
      const fileInput = importForm.field('file');
      fileInput.accept = 'application/json,.json';
      fileInput.addEventListener('change', async () => {
        fileText = fileInput.files?.[0] ? await fileInput.files[0].text() : null;
      });
      nodes.push(h('section', {}, h('h2', {}, t('keys.import_title')), importForm.element));
      return nodes;
    }

    async function institutionSection(pair) {
      const institutionId = user.institution?.id;
      if (!institutionId) return [notice('info', t('keys.no_institution'))];
      const info = await get(`/institutions/${institutionId}/members`, { signal: ctx.signal });
      const me = info.members.find((m) => m.user_id === user.id);
      const nodes = [h('h2', {}, t('keys.institution_title'))];
      if (info.current_version === null) {
        nodes.push(
          notice('warning', t('keys.no_institution_key')),
          button(
            t('keys.create_institution_key'),
            async (event) => {
              event.currentTarget.disabled = true;
              try {
                const key = wasm.InstitutionKey.generate(1);
                const envelope = key.wrapFor(pair.publicKey, user.id, institutionId);
                key.free();
                await post(`/institutions/${institutionId}/keys`, { version: 1, envelope });
                await draw(t('keys.institution_key_created'));
              } catch (err) {
                await draw(null, err);
              }
            },
            { variant: 'primary', id: 'create-institution-key' },
          ),
        );
        return nodes;
      }
      const version = info.current_version;
      const iHold = me?.holds.includes(version);
      const chain = await keyChainStatus(user, { signal: ctx.signal });
      // Sealing, granting and rotating need the current version trusted.
      const trusted = iHold && chain.some((v) => v.version === version && v.trusted);
      const newest = chain[chain.length - 1];
      // The newest version I hold, when it is not trusted (nothing is sealed); else the first
      // version whose own verdict is doubtful (a replaced key before pinned ones).
      const doubtful = newest && !newest.trusted ? newest : chain.find((v) => !v.trusted && v.since === v.version);
      if (doubtful) {
        const kind = ['key_changed', 'key_chain_broken', 'key_unreadable'].includes(doubtful.cause) ? 'error' : 'warning';
        const text = doubtful === newest
          ? new UntrustedKeyError(newest).message
          : `${t('keys.chain.older_untrusted', { version: doubtful.version })} ${reasonText(doubtful)}`;
        const warning = notice(kind, text);
        warning.id = 'key-chain-warning';
        warning.dataset.reason = doubtful.cause;
        nodes.push(warning);
      }
      nodes.push(
        facts([
          [t('keys.current_version'), String(version)],
          [t('keys.my_access'), iHold ? t('keys.holder') : t('keys.waiting_for_grant')],
          ...(info.passports_pending_rotation ? [[t('keys.pending_rotation'), String(info.passports_pending_rotation)]] : []),
          ...(info.notes_pending_rotation ? [[t('keys.pending_rotation_notes'), String(info.notes_pending_rotation)]] : []),
        ]),
      );
      if (!iHold) nodes.push(notice('info', t('keys.ask_colleague')));
      if (chain.length) nodes.push(...chainSection(chain, institutionId));
      const pending = info.passports_pending_rotation;
      // Notes are medical records: re-sealing them needs that permission too.
      const notesPending = allowed(user, 'medical_records') ? info.notes_pending_rotation : 0;
      if (iHold && !trusted) {
        // Under a version the chain does not vouch for, nothing is to be continued: the warning
        // above says what to do.
      } else if (pending > 0 || notesPending > 0) {
        const what = pending > 0 ? ['keys.rotation_unfinished', pending] : ['keys.rotation_unfinished_notes', notesPending];
        nodes.push(
          trusted
            ? notice('warning', t(what[0], { count: what[1] }), h('p', {}, button(t('keys.rotation_continue'), () => reencrypt(), { variant: 'primary', id: 'rotation-continue' })))
            : notice('info', t(`${what[0]}_other`, { count: what[1] })),
        );
      } else if (info.notes_pending_rotation > 0) {
        nodes.push(notice('info', t('keys.rotation_notes_need_permission', { count: info.notes_pending_rotation })));
      }
      const waiting = info.members.filter((m) => m.user_id !== user.id && m.public_key && !m.holds.includes(version));
      nodes.push(
        dataTable({
          caption: t('keys.waiting_caption'),
          className: 'waiting',
          columns: [
            { label: t('keys.colleague'), rowHeader: true, render: (m) => `${m.full_name} (${m.login})` },
            { label: t('keys.fingerprint'), render: fingerprintCell },
            {
              label: t('keys.actions'),
              render: (m) =>
                trusted
                  ? button(t('keys.grant'), () => grant(m, version, institutionId), { variant: 'primary', dataset: { login: m.login } })
                  : '—',
            },
          ],
          rows: waiting,
          empty: t('keys.nobody_waiting'),
        }),
        ...rotationSection(info, iHold, trusted, pair),
      );
      return nodes;
    }

    /** Why version `v` (untrusted) is not trusted: its own reason, or the version it follows. */
    function reasonText(v) {
      if (v.since !== v.version) return t('keys.chain.after_untrusted', { since: v.since });
      return t(`keys.chain.reason.${v.reason}`, { version: v.version, previous: v.version - 1 });
    }

    /**
     * The versions I hold, oldest first (`chain`: keyChainStatus), each with its fingerprint and
     * the verdict on it. A version without a link (made before links were kept) that follows a
     * trusted one can be vouched for; one that nothing vouches for in this browser
     * (`key_unpinned`, `key_chain_gap`) can be trusted by hand. A replaced key or a broken link
     * cannot.
     */
    function chainSection(chain, institutionId) {
      const state = (v) => {
        if (v.vouched === 'pinned') return t('keys.chain.pinned');
        if (v.vouched === 'linked') return t('keys.chain.vouched', { previous: v.version - 1 });
        if (v.vouched === 'first_use') return t('keys.chain.oldest');
        return [badge(t('keys.chain.untrusted'), 'danger'), ' ', reasonText(v)];
      };
      const action = (v, i) => {
        if (v.trusted) return '—';
        if (v.reason === 'key_chain_missing') {
          return button(t('keys.chain.vouch', { version: v.version }), () => vouch(chain[i - 1], v, institutionId), { variant: 'primary', id: `key-vouch-${v.version}` });
        }
        if (v.reason === 'key_unpinned' || v.reason === 'key_chain_gap') {
          return button(t('keys.chain.trust', { version: v.version }), () => trust(v), { id: `key-trust-${v.version}` });
        }
        return '—';
      };
      return [
        h('h3', {}, t('keys.chain.title')),
        h('p', { class: 'hint' }, t('keys.chain.intro')),
        dataTable({
          caption: t('keys.chain.caption'),
          className: 'key-chain',
          columns: [
            { label: t('keys.chain.version'), rowHeader: true, render: (v) => String(v.version) },
            { label: t('keys.fingerprint'), render: (v) => h('code', { class: 'fingerprint', dataset: { version: String(v.version) } }, v.fingerprint ?? '—') },
            {
              label: t('keys.chain.state'),
              render: (v) => h('span', { class: 'key-state', dataset: { version: String(v.version), trusted: String(v.trusted), state: v.vouched ?? v.reason } }, state(v)),
            },
            { label: t('keys.actions'), render: (v) => action(v, chain.indexOf(v)) },
          ],
          rows: chain,
        }),
      ];
    }

    /**
     * Asks the user to compare the fingerprint of `v` (the texts of `keys.chain.${kind}_title`,
     * `_confirm` and `_confirm_button`), then runs `act` and draws the page again with `done`, or
     * with the error.
     */
    async function afterComparing(kind, v, act, done) {
      const ok = await confirmDialog({
        title: t(`keys.chain.${kind}_title`, { version: v.version }),
        message: t(`keys.chain.${kind}_confirm`, { version: v.version, fingerprint: v.fingerprint }),
        confirmLabel: t(`keys.chain.${kind}_confirm_button`),
      });
      if (!ok) return;
      try {
        await act();
        await draw(t(done, { version: v.version }));
      } catch (err) {
        await draw(null, err);
      }
    }

    /**
     * Vouches for `next`, a version without a link, with the trusted version before it
     * (`previous`), once the user says its fingerprint is the one the colleague who rotated the
     * key reads out: its link is made here and stored.
     */
    function vouch(previous, next, institutionId) {
      return afterComparing('vouch', next, async () => {
        const link = previous.key.linkTo(next.key, institutionId);
        await put(`/institutions/${institutionId}/keys/${next.version}/link`, { link });
      }, 'keys.chain.vouched_done');
    }

    /**
     * Trusts `v` by hand (this browser pins it), once the user says its fingerprint is the one a
     * colleague who holds it reads out.
     */
    function trust(v) {
      return afterComparing('trust', v, () => pinVersion(user, v.version, { fingerprint: v.fingerprint }), 'keys.chain.trust_done');
    }

    /**
     * A colleague's fingerprint as computed here from the public key the server gives (never the
     * server's own `fingerprint`), marked when the server's differs or the key does not parse.
     */
    function fingerprintCell(m) {
      const { fingerprint, problem } = checkMemberKey(wasm, m);
      const code = fingerprint ? h('code', { class: 'fingerprint', dataset: { login: m.login } }, fingerprint) : null;
      if (!problem) return code;
      return [code, ' ', badge(problem === 'mismatch' ? t('keys.fingerprint_mismatch') : t('keys.fingerprint_unreadable'), 'danger')];
    }

    /**
     * Who holds the current version, and (for an administrator holding it, vouched for by the key
     * chain: `trusted`) the rotate button.
     */
    function rotationSection(info, iHold, trusted, pair) {
      const version = info.current_version;
      const holders = info.members.filter((m) => m.public_key && m.holds.includes(version));
      const nodes = [
        h('h2', {}, t('keys.rotation_title')),
        h('p', {}, t('keys.rotation_intro')),
        dataTable({
          caption: t('keys.holders_caption', { version }),
          className: 'holders',
          columns: [
            { label: t('keys.colleague'), rowHeader: true, render: (m) => `${m.full_name} (${m.login})` },
            { label: t('keys.fingerprint'), render: fingerprintCell },
          ],
          rows: holders,
        }),
      ];
      if (!allowed(user, 'administration')) {
        nodes.push(h('p', { class: 'hint' }, t('keys.rotation_admin_only')));
      } else if (!iHold) {
        nodes.push(h('p', { class: 'hint' }, t('keys.rotation_holder_only')));
      } else if (!trusted) {
        nodes.push(h('p', { class: 'hint', id: 'rotation-untrusted' }, t('keys.chain.rotation_blocked', { version })));
      } else if (info.passports_pending_rotation > 0 || info.notes_pending_rotation > 0) {
        nodes.push(h('p', { class: 'hint' }, t('keys.rotation_finish_first')));
      } else {
        nodes.push(h('p', {}, button(t('keys.rotate'), () => rotate(info, holders, pair), { variant: 'danger', id: 'rotate-key' })));
      }
      return nodes;
    }

    async function rotate(info, holders, pair) {
      const next = info.current_version + 1;
      // A holder whose key fails its check is said before anything is asked (createNextVersion
      // checks again before writing).
      try {
        checkedHolders(wasm, user, holders);
      } catch (err) {
        await draw(null, err);
        return;
      }
      const ok = await confirmDialog({
        title: t('keys.rotate_title', { version: next }),
        message: t('keys.rotate_confirm', { version: next, count: holders.length }),
        confirmLabel: t('keys.rotate_confirm_button'),
        danger: true,
      });
      if (!ok) return;
      try {
        await createNextVersion({ wasm, user, pair, members: info, holders });
      } catch (err) {
        await draw(null, err);
        return;
      }
      reencrypt(next);
    }

    /**
     * Re-encrypts the passports left under older versions, then re-seals the notes (startRun),
     * and shows its progress. `created`: the key version just made, or null (a run continued).
     * While the page's state holds a run, no other is started: the page shows that one.
     */
    function reencrypt(created = null) {
      if (!ctx.state.rotation || ctx.state.rotation.outcome) ctx.state.rotation = startRun(user, ctx.stateSignal, created);
      showRun(ctx.state.rotation);
    }

    /**
     * The progress of `run` (a heading and a label naming the stage, bar, count, a Cancel button)
     * in this drawing of the page, which follows it until the page is drawn again; then the
     * outcome, drawn once. Each stage's heading is said to screen readers once.
     */
    function showRun(run) {
      if (ctx.signal.aborted) return;
      const bar = h('progress', { id: 'rotation-progress', max: '1', value: '0' });
      const count = h('p', { id: 'rotation-count' }, t('common.loading'));
      const title = h('h2', { id: 'rotation-progress-title' }, '');
      const label = h('label', { for: 'rotation-progress' }, '');
      const cancel = button(t('common.cancel'), () => {
        cancel.disabled = true;
        run.cancel();
      }, { id: 'rotation-cancel' });
      cancel.disabled = run.cancelled;
      body.replaceChildren(
        ...(run.created !== null ? [notice('success', t('keys.rotation_created', { version: run.created }))] : []),
        h(
          'section',
          { class: 'rotation-progress', 'aria-labelledby': 'rotation-progress-title' },
          title,
          h('p', {}, t('keys.rotation_keep_open')),
          label,
          bar,
          count,
          h('p', {}, cancel),
        ),
      );
      const progress = () => {
        const notes = run.stage === 'notes';
        title.textContent = t(notes ? 'keys.rotation_progress_title_notes' : 'keys.rotation_progress_title');
        label.textContent = t(notes ? 'keys.rotation_progress_label_notes' : 'keys.rotation_progress_label');
        if (run.announced !== run.stage) announce(title.textContent);
        run.announced = run.stage;
        if (!run.progress) return;
        const { message, done, total, skipped } = run.progress;
        bar.max = Math.max(total, 1);
        bar.value = done + skipped.length;
        count.textContent = t(message, { done: done + skipped.length, total, count: total });
      };
      progress();
      const view = { progress, finished: () => finishRun(run) };
      run.view = view;
      // Drawn again (a language switch) or left: the next drawing, if any, takes the run over.
      ctx.signal.addEventListener('abort', () => {
        if (run.view === view) run.view = null;
      });
      if (run.outcome) finishRun(run);
    }

    /** The outcome of `run`, in place of its progress. */
    async function finishRun(run) {
      run.view = null;
      const { result, noteResult } = run.outcome;
      const notes = [];
      if (result.skipped?.length) notes.push(notice('warning', t('keys.rotation_skipped', { count: result.skipped.length })));
      if (noteResult?.skipped.length) notes.push(notice('warning', t('keys.rotation_skipped_notes', { count: noteResult.skipped.length })));
      try {
        if (result.error) {
          await draw(null, result.error, notes);
        } else if (result.status === 'cancelled') {
          if (!run.said) announce(t('keys.rotation_cancelled'));
          run.said = true;
          await draw(null, null, [notice('info', t('keys.rotation_cancelled')), ...notes]);
        } else {
          let message = t('keys.rotation_done', { count: result.done });
          if (noteResult?.done) message = `${message} ${t('keys.rotation_done_notes', { count: noteResult.done })}`;
          if (!run.said) announce(message);
          run.said = true;
          await draw(message, null, notes);
        }
      } catch (err) {
        if (!ctx.signal.aborted) throw err;
      }
      // Drawn again meanwhile: the next drawing shows the outcome (the run is still kept).
      if (!ctx.signal.aborted && ctx.state.rotation === run) delete ctx.state.rotation;
    }

    async function grant(member, version, institutionId) {
      // The fingerprint read out is that of the key the envelopes are wrapped to, computed here.
      let fingerprint;
      try {
        fingerprint = trustedFingerprint(wasm, member);
      } catch (err) {
        await draw(null, err);
        return;
      }
      const ok = await confirmDialog({
        title: t('keys.grant_title', { name: member.full_name }),
        message: t('keys.grant_confirm', { fingerprint }),
        confirmLabel: t('keys.grant_confirm_button'),
      });
      if (!ok) return;
      try {
        // The current version, and the older ones I hold that the colleague lacks: passports and
        // notes not yet re-encrypted after a rotation stay under those. Only trusted versions
        // are passed on: a planted or replaced key stays with whoever planted it.
        const chain = await keyChainStatus(user);
        const current = chain.find((v) => v.version === version);
        if (!current) throw new Error('no envelope');
        if (!current.trusted) throw new UntrustedKeyError(current);
        for (const { version: v, key, trusted } of [...chain].reverse()) {
          if (!trusted || v > version || (v !== version && member.holds.includes(v))) continue;
          const envelope = key.wrapFor(member.public_key, member.user_id, institutionId);
          await post(`/institutions/${institutionId}/keys/${v}/envelopes`, { recipient_id: member.user_id, envelope });
        }
        await draw(t('keys.granted', { name: member.full_name }));
      } catch (err) {
        await draw(null, err);
      }
    }

    async function draw(message = null, error = null, notes = []) {
      const pair = unlockedPair(user.id);
      const nodes = [...notes];
      if (message) nodes.push(notice('success', message));
      if (error) {
        const { errorMessage } = await import('../api.js');
        // A colleague's key that failed its check is said as such (no console error: expected).
        nodes.push(notice('error', error instanceof MemberKeyError ? error.message : errorMessage(error)));
      }
      if (!pair) {
        nodes.push(...passphraseForms());
      } else {
        nodes.push(
          h('h2', {}, t('keys.my_key')),
          facts([[t('keys.my_fingerprint'), h('code', { class: 'fingerprint', id: 'my-fingerprint' }, pair.fingerprint)]]),
        );
        if (justCreated) nodes.push(notice('warning', t('keys.keep_file')));
        if (keyFile) nodes.push(h('p', {}, downloadLink(user.login, keyFile)));
        try {
          nodes.push(...(await institutionSection(pair)));
        } catch (err) {
          // The key store was upgraded by another tab: my key and its file stay on show.
          if (!(err instanceof KeyStoreOutdatedError)) throw err;
          nodes.push(notice('error', err.message));
        }
      }
      body.replaceChildren(...nodes);
    }

    // A language switch during a rotation: the page shows the run going on (reencrypt).
    if (ctx.state.rotation) showRun(ctx.state.rotation);
    else await draw(null, null, unstored ? [notice('error', t('keys.not_stored'))] : []);
  },
});
