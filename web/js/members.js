// Colleagues' public keys as `GET /institutions/{id}/members` lists them, checked in the browser.
// The server is not trusted with them: a compromised server could list its own public key beside
// a colleague's real fingerprint, the holder would hear the fingerprints match, grant, and the
// institution key would be wrapped to the server. So the fingerprint shown is computed here
// (WASM `publicKeyFingerprint`) from the very public key a grant or a rotation wraps to, and a
// member whose key does not parse, or whose fingerprint differs from the server's, gets nothing
// (palreg-client's `keys grant` computes it locally too).

import { t } from './i18n.js';

/** A member whose listed public key is not to be trusted; `message` is for the user. */
export class MemberKeyError extends Error {
  constructor(member, problem) {
    const params = { name: member.full_name, login: member.login };
    super(problem === 'mismatch' ? t('keys.member_key_mismatch', params) : t('keys.member_key_unreadable', params));
    this.name = 'MemberKeyError';
    this.member = member;
    this.problem = problem;
  }
}

/**
 * The fingerprint of `member.public_key` computed here (`wasm`: the loaded crypto module), and
 * what is wrong with the key: `{ fingerprint, problem }`, where `problem` is null, 'unreadable'
 * (the key does not parse; `fingerprint` is null) or 'mismatch' (the server lists another
 * fingerprint for it).
 */
export function checkMemberKey(wasm, member) {
  let fingerprint;
  try {
    fingerprint = wasm.publicKeyFingerprint(member.public_key);
  } catch {
    return { fingerprint: null, problem: 'unreadable' };
  }
  return { fingerprint, problem: fingerprint === member.fingerprint ? null : 'mismatch' };
}

/** The fingerprint of `member.public_key`, computed here; throws MemberKeyError unless it checks out. */
export function trustedFingerprint(wasm, member) {
  const { fingerprint, problem } = checkMemberKey(wasm, member);
  if (problem) throw new MemberKeyError(member, problem);
  return fingerprint;
}
