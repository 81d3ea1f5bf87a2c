// Who is signed in, sign-in and sign-out, and what happens when the session ends under the
// user's feet (it expired, or was ended by a password change or from another window).
//
// The session itself is the HttpOnly cookie the server sets: JavaScript never sees or stores the
// token. This module only keeps the answer of `GET /me` in memory (and the recovery code the
// sign-in spent, if any).

import { get, post, setEnrolmentRequiredHandler, setSessionExpiredHandler } from './api.js';
import { discardAll, draftRouteFor, saveDraft } from './drafts.js';
import { forgetKeys, keyWorkEnded } from './keystore.js';
import { HOME, LOGIN, currentRoute, leavePage, navigate, outletElement, rememberReturn, stateKeptAcrossSignIn, takeReturn } from './router.js';

let user = null;
let expired = false;
// The recovery code this session was signed in with (as the server reads it), memory only: it is
// spent on the server, and a page that still shows it must say so (pages/password.js).
let spentRecoveryCode = null;

function changed() {
  window.dispatchEvent(new CustomEvent('palreg:session', { detail: { user } }));
}

/**
 * The signed-in user (`GET /me`: id, login, full_name, roles, permissions, institution, `totp`
 * {enabled, required, recovery_codes_left}, `totp_enrolment_required`) or null.
 */
export function currentUser() {
  return user;
}

/**
 * Whether the signed-in user belongs to no institution: only such an administrator changes
 * what every institution shares (roles, reference books).
 */
export function regionWide() {
  return Boolean(user) && !user.institution;
}

/** Whether the signed-in user holds `permission`. */
export function can(permission) {
  return Boolean(user?.permissions.includes(permission));
}

/** Asks the server who the cookie belongs to; null when there is no live session. */
export async function restoreSession() {
  try {
    user = await get('/me', { session: false });
  } catch (err) {
    if (err.status !== 401) throw err;
    user = null;
  }
  changed();
  return user;
}

/**
 * Reads `GET /me` again, for what may change under a live session: the second factor (reset by
 * an administrator, required by a role). The menu follows.
 */
export async function refreshUser({ signal } = {}) {
  const fresh = await get('/me', { signal });
  if (user && (fresh.id !== user.id || fresh.institution?.id !== user.institution?.id)) {
    // The cookie now belongs to someone else (signed in from another tab) or to another
    // institution: nothing of this user's may stay (unlocked keys, kept forms). Sign in again.
    endLocally();
  } else if (user) {
    user = fresh;
    changed();
  }
  return user;
}

/**
 * Signs in; resolves to the user, rejects with the server's error (wrong password, locked…, and
 * `totp_required` / `invalid_totp` for an account with a second factor: `totp` is its code).
 */
export async function signIn(login, password, totp = undefined) {
  await post('/auth/login', { login, password, totp }, { session: false });
  // The answer does not say which factor was taken, nor need it: the server takes a code that
  // reads as a recovery code as one and never as the app's (routes/auth.rs), so a sign-in it
  // let in with one spent exactly that code.
  spentRecoveryCode = totp === undefined ? null : recoveryCodeOf(totp);
  user = await get('/me', { session: false });
  expired = false;
  changed();
  return user;
}

/**
 * A typed recovery code as the server reads it (totp.rs `normalize_recovery_code`): without
 * white space and dashes, ASCII letters in lower case, ten characters of the codes' alphabet;
 * null for anything else (the app's six digits).
 */
export function recoveryCodeOf(typed) {
  const code = String(typed)
    .replace(/[\p{White_Space}-]/gu, '')
    .replace(/[A-Z]/g, (c) => c.toLowerCase());
  return /^[2-9a-hjkmnp-z]{10}$/.test(code) ? code : null;
}

/** The recovery code (as `recoveryCodeOf` gives it) the current session was signed in with, or null. */
export function signedInWithRecoveryCode() {
  return user ? spentRecoveryCode : null;
}

/**
 * Where to go after signing in: the page whose form was kept when the session ended (if this
 * user typed it), else the page that asked for a sign-in, else home.
 */
export function routeAfterSignIn() {
  const draftRoute = user ? draftRouteFor(user.id) : null;
  const remembered = takeReturn(user?.id ?? null);
  return draftRoute ?? remembered ?? HOME;
}

/**
 * Signs out: ends the session on the server and forgets every kept form. The page is let go of
 * first: what it runs stops (a key rotation: its writes on the wire are aborted, nothing more is
 * written), and the work still using the keys is given a moment to wind down, before the session
 * ends and the keys are forgotten.
 */
export async function signOut() {
  leavePage();
  await keyWorkEnded();
  try {
    await post('/auth/logout', undefined, { session: false });
  } catch {
    // The session may be gone already; signing out locally is what matters.
  }
  endLocally();
}

/**
 * Forgets the user and every kept form, and shows sign-in (after a password change, say). What
 * the page runs stops first; keys still in use by work winding down are freed once it has ended
 * (keystore.js).
 */
export function endLocally() {
  user = null;
  spentRecoveryCode = null;
  expired = false;
  leavePage();
  discardAll();
  forgetKeys();
  takeReturn();
  changed();
  navigate(LOGIN);
}

/** True once after the session ended under the user: the sign-in page says so. */
export function takeExpiredNotice() {
  const was = expired;
  expired = false;
  return was;
}

function sessionEnded() {
  if (!user) return;
  const route = currentRoute();
  const outlet = outletElement();
  // The forms, and what the page keeps of its state (the recovery codes on screen): the same user
  // signing in again in this tab gets them back.
  if (outlet) saveDraft(route, user.id, outlet, stateKeptAcrossSignIn(route, user.id));
  rememberReturn(route, user.id);
  user = null;
  spentRecoveryCode = null;
  expired = true;
  changed();
  navigate(LOGIN);
}

/**
 * A request was refused until the user sets up a second factor (an administrator made one of
 * the user's roles require it during this session): the router leads to the enrolment page.
 */
function enrolmentRequired() {
  if (!user || user.totp_enrolment_required) return;
  user = { ...user, totp_enrolment_required: true, totp: { enabled: false, ...user.totp, required: true } };
  changed();
  navigate(currentRoute(), { replace: true });
}

setSessionExpiredHandler(sessionEnded);
setEnrolmentRequiredHandler(enrolmentRequired);
