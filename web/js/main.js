// Starts the browser client: message catalogs, the session (if the cookie holds a live one),
// the page chrome (header, menu, the notice of a key store another tab holds or has upgraded),
// then the router.

import { LANGUAGES, getLang, initI18n, setLang, t } from './i18n.js';
import { h, replace } from './dom.js';
import { HOME, menuFor, parseHash, refresh, startRouter } from './router.js';
import { currentUser, restoreSession, signOut } from './session.js';
import { errorMessage } from './api.js';
import { button, notice } from './ui.js';
import { invalidateBook } from './refs.js';
import { keyStoreState } from './keystore.js';
import './pages/index.js';

const topbar = document.getElementById('topbar');
const nav = document.getElementById('nav');
const main = document.getElementById('main');
const appNotices = document.getElementById('app-notices');

function languageSwitch() {
  return h(
    'div',
    { class: 'lang-switch', role: 'group', 'aria-label': t('chrome.language') },
    LANGUAGES.map(({ code, nativeName }) =>
      h(
        'button',
        {
          type: 'button',
          class: 'lang-button',
          lang: code,
          'aria-pressed': String(code === getLang()),
          dataset: { lang: code },
          onClick: async () => {
            await setLang(code);
            topbar.querySelector(`[data-lang="${code}"]`)?.focus();
          },
        },
        nativeName,
      ),
    ),
  );
}

function renderTopbar() {
  const user = currentUser();
  const brand = h(
    'a',
    { class: 'brand', href: `#${HOME}` },
    h('img', { class: 'brand-logo', src: 'img/logo.svg', alt: '', width: '32', height: '32' }),
    h('span', { class: 'brand-text' }, h('span', { class: 'brand-name' }, t('app.name')), h('span', { class: 'brand-sub' }, t('app.subtitle'))),
  );
  const account = user
    ? h(
        'div',
        { class: 'account' },
        h(
          'p',
          { class: 'account-who' },
          h('span', { class: 'account-name' }, user.full_name),
          h('span', { class: 'account-place' }, user.institution ? user.institution.name : t('home.region_wide_short')),
        ),
        h('button', { type: 'button', class: 'btn btn-quiet', onClick: () => signOut() }, t('chrome.sign_out')),
      )
    : null;
  // Drawn again after a language switch and whenever the account is read again (a page that
  // calls GET /me): a language button that had focus keeps it.
  const focusedLang = topbar.contains(document.activeElement) ? document.activeElement.dataset.lang : undefined;
  replace(topbar, h('div', { class: 'topbar-inner' }, brand, h('div', { class: 'topbar-tools' }, account, languageSwitch())));
  if (focusedLang) topbar.querySelector(`[data-lang="${focusedLang}"]`)?.focus();
}

function renderNav() {
  const user = currentUser();
  document.body.classList.toggle('signed-in', Boolean(user));
  document.body.classList.toggle('signed-out', !user);
  nav.hidden = !user;
  if (!user) {
    nav.replaceChildren();
    return;
  }
  nav.setAttribute('aria-label', t('chrome.main_menu'));
  replace(
    nav,
    menuFor(user).map(({ section, items }) =>
      h(
        'div',
        { class: 'nav-section' },
        section.labelKey ? h('h2', { class: 'nav-heading', id: `nav-${section.id}` }, t(section.labelKey)) : null,
        h(
          'ul',
          { class: 'nav-list', 'aria-labelledby': section.labelKey ? `nav-${section.id}` : null },
          items.map((item) => h('li', {}, h('a', { href: item.href, dataset: { base: item.route.split('/:')[0] } }, t(item.labelKey)))),
        ),
      ),
    ),
  );
  markCurrent();
}

function markCurrent() {
  const { path } = parseHash();
  const links = [...nav.querySelectorAll('a[data-base]')];
  const matches = (base) => path === base || path.startsWith(`${base}/`);
  // The most specific entry only: on /patients/new, "New patient" and not also "Find a patient".
  const longest = Math.max(-1, ...links.filter((l) => matches(l.dataset.base)).map((l) => l.dataset.base.length));
  for (const link of links) {
    const base = link.dataset.base;
    const current = matches(base) && base.length === longest;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/**
 * Above every page, what the key store of this tab says (keystore.js): another tab upgraded it
 * (palreg was updated there: this tab must reload), or this tab's opening waits for another tab
 * that holds an older version open (it goes on by itself once that tab lets go).
 */
function renderKeyStoreNotice() {
  const state = keyStoreState();
  let box = null;
  if (state === 'outdated') {
    box = notice('warning', t('keystore.outdated'), button(t('keystore.reload'), () => window.location.reload(), { variant: 'primary', id: 'keystore-reload' }));
    // Nothing that needs a key works in this tab any more: said at once.
    box.setAttribute('role', 'alert');
  } else if (state === 'blocked') {
    box = notice('warning', t('keystore.blocked'));
  }
  if (box) {
    box.id = 'keystore-notice';
    box.dataset.state = state;
  }
  replace(appNotices, box);
  appNotices.hidden = !box;
}

function renderChrome() {
  document.getElementById('skip-link').textContent = t('chrome.skip_to_content');
  renderTopbar();
  renderNav();
  renderKeyStoreNotice();
}

function bindSkipLink() {
  // The hash holds the route, so the skip link moves focus itself instead of changing it.
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const heading = main.querySelector('h1');
    (heading ?? main).focus();
  });
}

async function start() {
  await initI18n();
  bindSkipLink();
  try {
    await restoreSession();
  } catch (err) {
    renderChrome();
    main.replaceChildren(notice('error', errorMessage(err)));
    return;
  }
  renderChrome();
  window.addEventListener('palreg:session', () => {
    // Reference books are re-read for each session: another administrator may have changed them.
    invalidateBook();
    renderChrome();
  });
  window.addEventListener('palreg:keystore', renderKeyStoreNotice);
  window.addEventListener('palreg:langchange', () => {
    renderChrome();
    refresh();
  });
  // The menu marks the page being opened at once, not after its data has loaded.
  await startRouter(main, { onStart: markCurrent });
}

start().catch((err) => {
  console.error(err);
  main.replaceChildren(h('p', { class: 'notice notice-error', role: 'alert' }, 'palreg could not start. / Не удалось запустить palreg.'));
});
