// Hash routes and the page registry. Pages register themselves (see pages/index.js); the menu
// and the home page's shortcuts are built from the registrations the signed-in user may open.
//
//   registerPage({
//     route: '/admin/users/:id',       // hash path; `:name` segments become ctx.params.name
//     titleKey: 'users.edit.title',    // catalog key: document title (and usually the heading)
//     permission: 'administration',    // a permission, an array (any of them), or null: any
//                                      // signed-in user
//     public: false,                   // true: shown without a session (the sign-in page)
//     enrolment: false,                // true: the page where a user sets up a second factor;
//                                      // while a role requires one the user lacks, it is the
//                                      // only page shown (the server refuses all else)
//     menu: {                          // optional: an entry of the main menu
//       section: 'admin',              //   a section from registerSection()
//       order: 10,                     //   position inside the section
//       labelKey: 'nav.users',         //   default: titleKey
//       descriptionKey: 'home.shortcuts.users',  // optional: shown on the home page
//       path: '/admin/refs/districts', //   where the entry leads (required when route has params)
//     },
//     render: async (ctx) => cleanup?, // builds the page into ctx.root (see below)
//     keepAcrossSignIn: (state) => part?, // optional: what of ctx.state (below) outlives the
//                                      // session ending under the user, or null
//   })
//
// ctx = { root, params, query (URLSearchParams), route, user, signal (aborted when the user
// navigates away, and when the page is drawn again), navigate(route, {replace}), setTitle(text),
// state, stateSignal }. `render` may return a cleanup function. When it resolves, the router
// focuses the page's <h1>, shows flash messages, and gives back a form draft kept across a
// sign-in (drafts.js).
//
// A language switch draws the page again in place (refresh): the forms keep what was typed, and
// `ctx.state` is the same object as in the render before, for what else the user must not lose
// then (the recovery codes shown once, pages/password.js; a key rotation running, pages/keys.js).
// It is kept in memory only, for the same route and user; any other render (a navigation, a
// sign-in or sign-out) starts with a new, empty one. `ctx.stateSignal` is aborted when
// `ctx.state` is let go that way: work that belongs to the page rather than to one drawing of it
// stops on that signal, and goes on across a language switch.
// One exception: what a page's `keepAcrossSignIn(state)` returns when the session ends under the
// user (session.js) waits with the form draft, in memory (drafts.js), and is the `ctx.state` of
// the same page's first render after the same user signs in again in this tab (what the server
// has already made and the page alone shows: the recovery codes, pages/password.js). Anyone else
// signing in, or a sign-out, discards it.

import { t } from './i18n.js';
import { h } from './dom.js';
import { currentUser } from './session.js';
import { applyForms, captureForms, takeDraft, takeDraftState } from './drafts.js';
import { errorMessage } from './api.js';
import { notice, pageHeading, showFlash } from './ui.js';

const pages = [];
const sections = new Map();
const RETURN_KEY = 'palreg.returnTo';
export const HOME = '/home';
export const LOGIN = '/login';

let outlet = null;
let onStart = () => {};
let onRendered = () => {};
let renderSeq = 0;
let controller = null;
let cleanup = null;
let pendingRestore = null;
let firstRender = true;
// The page state of the last render: `{ page, route, userId, state, leave }` (ctx.state, above;
// `leave` aborts ctx.stateSignal).
let kept = null;

/** Declares a menu section: `{id, labelKey, order}`. */
export function registerSection({ id, labelKey, order = 100 }) {
  sections.set(id, { id, labelKey, order });
}

function compile(route) {
  const parts = route.split('/').filter(Boolean);
  const keys = [];
  const pattern = parts
    .map((part) => {
      if (part.startsWith(':')) {
        keys.push(part.slice(1));
        return '/([^/]+)';
      }
      return `/${part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`;
    })
    .join('');
  return {
    regex: new RegExp(`^${pattern || '/'}$`),
    keys,
    // Literal segments win over parameters: `/admin/users/new` before `/admin/users/:id`.
    specificity: parts.filter((p) => !p.startsWith(':')).length * 100 + parts.length,
  };
}

/** Registers a page (see the contract at the top of this file). */
export function registerPage(spec) {
  const { route, titleKey, render } = spec;
  if (typeof route !== 'string' || !route.startsWith('/')) throw new Error(`registerPage: bad route ${route}`);
  if (typeof titleKey !== 'string') throw new Error(`registerPage ${route}: titleKey is required`);
  if (typeof render !== 'function') throw new Error(`registerPage ${route}: render is required`);
  if (pages.some((p) => p.route === route)) throw new Error(`registerPage: ${route} is registered twice`);
  if (spec.menu && route.includes(':') && !spec.menu.path) {
    throw new Error(`registerPage ${route}: a menu entry of a route with parameters needs menu.path`);
  }
  pages.push({ permission: null, public: false, enrolment: false, ...spec, ...compile(route) });
  pages.sort((a, b) => b.specificity - a.specificity);
}

/**
 * Whether `user` must set up a second factor before anything else: a role requires one, and
 * until the user has it the server refuses every request that needs a permission.
 */
export function mustEnrol(user) {
  return Boolean(user?.totp_enrolment_required);
}

/** Every registered page: `{route, titleKey, permission, public, menu}` (tests, documentation). */
export function registeredPages() {
  return pages.map(({ route, titleKey, permission, public: isPublic, menu }) => ({ route, titleKey, permission, public: isPublic, menu: menu ?? null }));
}

/** Whether `user` holds `permission` (a name, an array meaning any of them, or null). */
export function allowed(user, permission) {
  if (!user) return false;
  if (permission === null || permission === undefined) return true;
  const wanted = Array.isArray(permission) ? permission : [permission];
  return wanted.some((p) => user.permissions.includes(p));
}

/** The menu for `user`: sections with the entries it may open, in order. */
export function menuFor(user) {
  const bySection = new Map();
  for (const page of pages) {
    if (!page.menu || page.public || !allowed(user, page.permission)) continue;
    if (mustEnrol(user) && !page.enrolment) continue;
    const section = sections.get(page.menu.section);
    if (!section) throw new Error(`page ${page.route}: unknown menu section ${page.menu.section}`);
    const list = bySection.get(section) ?? [];
    list.push({
      href: `#${page.menu.path ?? page.route}`,
      path: page.menu.path ?? page.route,
      labelKey: page.menu.labelKey ?? page.titleKey,
      descriptionKey: page.menu.descriptionKey ?? null,
      order: page.menu.order ?? 100,
      route: page.route,
    });
    bySection.set(section, list);
  }
  return [...bySection.entries()]
    .sort(([a], [b]) => a.order - b.order)
    .map(([section, items]) => ({ section, items: items.sort((a, b) => a.order - b.order) }));
}

/** `{path, query, route}` of the current hash (`#/admin/audit?actor=x`). */
export function parseHash(hash = window.location.hash) {
  const raw = hash.replace(/^#/, '') || HOME;
  const [path, search = ''] = raw.split('?');
  const cleanPath = path === '/' || path === '' ? HOME : path;
  return { path: cleanPath, query: new URLSearchParams(search), route: search ? `${cleanPath}?${search}` : cleanPath };
}

/** The current route, e.g. `/admin/users/5`. */
export function currentRoute() {
  return parseHash().route;
}

/** The element pages render into (`<main>`). */
export function outletElement() {
  return outlet;
}

/** Goes to `route` (a hash path, optionally with `?query`). */
export function navigate(route, { replace = false } = {}) {
  const target = `#${route}`;
  if (window.location.hash === target) {
    render();
  } else if (replace) {
    window.history.replaceState(null, '', target);
    render();
  } else {
    window.location.hash = target;
  }
}

/** A route with a query built from an object (empty values are left out). */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(name, String(value));
  }
  const search = query.toString();
  return search ? `${path}?${search}` : path;
}

/**
 * Remembers where to go after signing in; with `userId`, only for that user (the page a user was
 * on when the session ended is no business of the next one to sign in at this computer).
 */
export function rememberReturn(route, userId = null) {
  if (!route || route.startsWith(LOGIN)) return;
  try {
    window.sessionStorage.setItem(RETURN_KEY, JSON.stringify({ route, userId }));
  } catch {
    // without storage, sign-in leads home
  }
}

/** Takes (and forgets) the remembered route, if it is meant for `userId`. */
export function takeReturn(userId = null) {
  try {
    const saved = JSON.parse(window.sessionStorage.getItem(RETURN_KEY) ?? 'null');
    window.sessionStorage.removeItem(RETURN_KEY);
    const route = saved?.route;
    const forUser = saved?.userId === null || saved?.userId === undefined || saved.userId === userId;
    return forUser && typeof route === 'string' && route.startsWith('/') && !route.startsWith(LOGIN) ? route : null;
  } catch {
    return null;
  }
}

function findPage(path) {
  for (const page of pages) {
    const match = page.regex.exec(path);
    if (match) {
      const params = {};
      page.keys.forEach((key, i) => {
        params[key] = decodeURIComponent(match[i + 1]);
      });
      return { page, params };
    }
  }
  return null;
}

const notFoundPage = {
  route: '(not found)',
  titleKey: 'pages.not_found.title',
  render(ctx) {
    ctx.root.append(
      pageHeading(t('pages.not_found.title')),
      h('p', {}, t('pages.not_found.text')),
      h('p', {}, h('a', { href: `#${HOME}` }, t('pages.back_home'))),
    );
  },
};

function notPermittedPage(permission) {
  const names = (Array.isArray(permission) ? permission : [permission]).map((p) => t(`permissions.names.${p}`));
  return {
    route: '(not permitted)',
    titleKey: 'pages.not_permitted.title',
    render(ctx) {
      ctx.root.append(
        pageHeading(t('pages.not_permitted.title')),
        notice('warning', t('pages.not_permitted.text', { permission: names.join(', ') })),
        h('p', {}, h('a', { href: `#${HOME}` }, t('pages.back_home'))),
      );
    },
  };
}

function runCleanup() {
  if (typeof cleanup === 'function') {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
  }
  cleanup = null;
}

/**
 * Lets go of the page shown, as a navigation does, before the next page is known (sign-out, which
 * must stop what the page runs before the session ends: session.js): its signals are aborted
 * (ctx.signal, and ctx.stateSignal: a key rotation stops), its cleanup runs, its state is
 * dropped, and a render still under way is superseded. It stays on screen, inert, until the next
 * render replaces it.
 */
export function leavePage() {
  renderSeq++;
  controller?.abort();
  controller = null;
  runCleanup();
  kept?.leave.abort();
  kept = null;
  if (!outlet) return;
  outlet.setAttribute('aria-busy', 'true');
  for (const view of outlet.children) view.inert = true;
}

/**
 * What the page shown keeps of its state (its `keepAcrossSignIn`) when the session of `userId`
 * ends under it on `route`, for that user's sign-in again (session.js saves it with the draft);
 * null for most pages.
 */
export function stateKeptAcrossSignIn(route, userId) {
  if (!kept || kept.route !== route || kept.userId !== userId) return null;
  const page = pages.find((p) => p.route === kept.page);
  return page?.keepAcrossSignIn?.(kept.state) ?? null;
}

/** Renders the current route again, keeping whatever was typed into its forms. */
export function refresh() {
  pendingRestore = outlet ? captureForms(outlet, { includePasswords: true }) : null;
  return render({ again: true });
}

async function render({ again = false } = {}) {
  const seq = ++renderSeq;
  const { path, query, route } = parseHash();
  controller?.abort();
  controller = new AbortController();
  runCleanup();

  const user = currentUser();
  const found = findPage(path);
  let page = found?.page ?? notFoundPage;
  if (!page.public && !user) {
    rememberReturn(route);
    navigate(LOGIN, { replace: true });
    return;
  }
  if (!page.public && mustEnrol(user) && !page.enrolment) {
    const enrolment = pages.find((p) => p.enrolment);
    if (enrolment) {
      navigate(enrolment.route, { replace: true });
      return;
    }
  }
  if (!page.public && !allowed(user, page.permission)) page = notPermittedPage(page.permission);

  const restore = pendingRestore;
  pendingRestore = null;
  const userId = user?.id ?? null;
  const same = again && kept && kept.page === page.route && kept.route === route && kept.userId === userId;
  if (!same) {
    kept?.leave.abort();
    // Signed in again after the session ended here: what the page kept then, if this user left it.
    const state = (user && takeDraftState(route, user.id)) ?? {};
    kept = { page: page.route, route, userId, state, leave: new AbortController() };
  }
  // Each render gets its own container, so that a slow page that resolves after the user has
  // moved on writes into a detached element, not into the next page.
  const view = h('div', { class: 'view', dataset: { page: page.route } });
  outlet.replaceChildren(view);
  outlet.setAttribute('aria-busy', 'true');
  delete outlet.dataset.route;
  document.title = `${t(page.titleKey)} · ${t('app.name')}`;
  const ctx = {
    root: view,
    params: found?.params ?? {},
    query,
    route,
    user,
    signal: controller.signal,
    navigate,
    setTitle(text) {
      document.title = `${text} · ${t('app.name')}`;
    },
    state: kept.state,
    stateSignal: kept.leave.signal,
  };
  onStart({ page, route, user });
  try {
    cleanup = await page.render(ctx);
  } catch (err) {
    if (seq !== renderSeq || err?.name === 'AbortError') return;
    if (!err?.sessionExpired) {
      if (!view.querySelector('h1')) view.prepend(pageHeading(t(page.titleKey)));
      view.append(notice('error', errorMessage(err)));
    }
  }
  // Superseded by a newer navigation, or the session ended during the render (the sign-in page
  // is on its way, and the form draft just saved must wait for it).
  if (seq !== renderSeq || (!page.public && !currentUser())) return;
  outlet.removeAttribute('aria-busy');

  showFlash(view);
  if (restore) applyForms(view, restore);
  if (user) {
    const draft = takeDraft(route, user.id);
    if (draft && applyForms(view, draft) > 0) {
      const message = t('session.restored');
      view.querySelector('h1')?.after(notice('info', message));
    }
  }
  // After a navigation, focus goes to the new page's heading, so that keyboard and screen
  // reader users start reading there. Not on the first page load (the skip link comes first),
  // nor after a language switch (focus stays on the switch).
  const heading = view.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    if (!restore && !firstRender) heading.focus({ preventScroll: false });
  }
  firstRender = false;
  // Marks for styling and for the end-to-end tests: which page is shown, for which route.
  outlet.dataset.page = page.route;
  outlet.dataset.route = route;
  onRendered({ page, route, user });
}

/**
 * Starts routing into `element`. `hooks.onStart({page, route, user})` runs as each page starts
 * to render (before it loads anything), `hooks.onRendered({page, route, user})` after it.
 */
export function startRouter(element, hooks = {}) {
  outlet = element;
  onStart = hooks.onStart ?? onStart;
  onRendered = hooks.onRendered ?? onRendered;
  window.addEventListener('hashchange', () => {
    // In-page anchors (not routes) do not re-render.
    if (window.location.hash.startsWith('#/') || window.location.hash === '') render();
  });
  return render();
}
