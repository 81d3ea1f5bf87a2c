// The one way to call the palreg API: same origin, the session cookie only (the token in the
// login response is never kept in JavaScript), JSON in and out, every error body mapped to an
// `ApiError` with a localized message. A 401 `unauthenticated` (the session expired or was
// ended elsewhere) starts the session-expired flow registered by session.js, and a 403
// `totp_enrolment_required` (a role now requires a second factor the user has not set up) the
// enrolment flow it registers too.

import { has, t } from './i18n.js';

const BASE = '/api/v1';

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} code the server's stable error code (or `network_error`, `bad_response`)
   * @param {string} serverMessage the server's English explanation (for logs, not for display)
   * @param {number|null} retryAfter seconds from the `Retry-After` header of a 429
   */
  constructor(status, code, serverMessage = '', retryAfter = null) {
    super(`${status} ${code}: ${serverMessage}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
    this.retryAfter = retryAfter;
    /** Set when the session had ended: the session-expired flow is already showing sign-in. */
    this.sessionExpired = false;
  }
}

let onSessionExpired = null;
let onEnrolmentRequired = null;

/** session.js registers what to do when a request finds the session gone. */
export function setSessionExpiredHandler(handler) {
  onSessionExpired = handler;
}

/** session.js registers what to do when a request is refused until a second factor is set up. */
export function setEnrolmentRequiredHandler(handler) {
  onEnrolmentRequired = handler;
}

function buildUrl(path, query) {
  const url = new URL(BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === null || value === undefined || value === '') continue;
    url.searchParams.set(name, String(value));
  }
  return url.pathname + url.search;
}

/**
 * Calls the API. Resolves to the parsed JSON body (or `null` for 204), rejects with `ApiError`.
 * Options: `body` (sent as JSON), `query` (object; empty values are left out), `signal`,
 * `session: false` for calls that do not need a session (sign-in, the first "who am I"), whose
 * 401 is an ordinary error rather than an expired session.
 */
export async function api(method, path, { body, query, signal, session = true } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(buildUrl(path, query), init);
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', String(err?.message ?? err));
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(response.status, response.ok ? 'bad_response' : `http_${response.status}`);
    }
  }
  if (response.ok) return data;

  const code = data?.error?.code ?? `http_${response.status}`;
  const retry = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  const error = new ApiError(response.status, code, data?.error?.message ?? '', Number.isFinite(retry) ? retry : null);
  if (response.status === 401 && code === 'unauthenticated' && session && onSessionExpired) {
    error.sessionExpired = true;
    onSessionExpired(error);
  }
  if (response.status === 403 && code === 'totp_enrolment_required' && onEnrolmentRequired) onEnrolmentRequired(error);
  throw error;
}

/**
 * Downloads a file from the API (a signed report): the same cookie-only, same-origin request as
 * `api()`, the body as a Blob. Resolves to `{blob, filename, headers}`; an error answer rejects
 * with `ApiError` exactly as `api()` does (including the session-expired flow).
 */
export async function download(path, { query, signal } = {}) {
  let response;
  try {
    response = await fetch(buildUrl(path, query), { method: 'GET', credentials: 'same-origin', cache: 'no-store', signal });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'network_error', String(err?.message ?? err));
  }
  if (!response.ok) {
    let data = null;
    try {
      data = JSON.parse(await response.text());
    } catch {
      // not JSON: the status alone says what happened
    }
    const code = data?.error?.code ?? `http_${response.status}`;
    const error = new ApiError(response.status, code, data?.error?.message ?? '');
    if (response.status === 401 && code === 'unauthenticated' && onSessionExpired) {
      error.sessionExpired = true;
      onSessionExpired(error);
    }
    if (response.status === 403 && code === 'totp_enrolment_required' && onEnrolmentRequired) onEnrolmentRequired(error);
    throw error;
  }
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'download';
  return { blob: await response.blob(), filename, headers: response.headers };
}

export const get = (path, options) => api('GET', path, options);
export const post = (path, body, options) => api('POST', path, { ...options, body });
export const put = (path, body, options) => api('PUT', path, { ...options, body });
export const del = (path, options) => api('DELETE', path, options);

/** A clear, localized sentence for an error from `api()` (or any other thrown value). */
export function errorMessage(err) {
  // An error of the client's own whose message is written for the user (translated), e.g. a key
  // the key chain does not vouch for (keystore.js): expected, so no console error.
  if (err?.forUser && typeof err.message === 'string') return err.message;
  if (!(err instanceof ApiError)) {
    console.error(err);
    return t('errors.unexpected');
  }
  if (err.code === 'account_locked') {
    const minutes = Math.max(1, Math.ceil((err.retryAfter ?? 60) / 60));
    return t('errors.account_locked', { count: minutes });
  }
  if (err.code === 'rate_limited') {
    const seconds = Math.max(1, err.retryAfter ?? 60);
    return seconds > 90
      ? t('errors.rate_limited_minutes', { count: Math.ceil(seconds / 60) })
      : t('errors.rate_limited', { count: seconds });
  }
  if (has(`errors.${err.code}`)) return t(`errors.${err.code}`);
  if (has(`errors.http_${err.status}`)) return t(`errors.http_${err.status}`);
  return t('errors.unexpected_status', { status: err.status });
}
