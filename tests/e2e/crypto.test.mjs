// The client-crypto WASM package (web/pkg, built by scripts/build-wasm.sh) loads and runs in the
// page under the server's Content-Security-Policy (`script-src 'self' 'wasm-unsafe-eval'`), and
// the page's CSP still refuses JavaScript eval.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN, ROOT, launchBrowser, withSession } from './harness.mjs';

const built = existsSync(join(ROOT, 'web', 'pkg', 'palreg_crypto_wasm.js'));
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

test('the WASM crypto package loads under the CSP and seals and opens a passport', { skip: !built && 'web/pkg is missing: run scripts/build-wasm.sh' }, async () => {
  await withSession(browser, { name: 'wasm' }, async (s) => {
    await s.signIn(ADMIN.login, ADMIN.password);
    const result = await s.page.evaluate(async () => {
      const { loadCrypto } = await import('/js/crypto.js');
      const wasm = await loadCrypto();
      const pseudonym = wasm.newPseudonym();
      const key = wasm.InstitutionKey.generate(1);
      const passport = JSON.stringify({ surname: 'Петрова', first_name: 'Анна', date_of_birth: '1948-03-08', sex: 'female' });
      const envelope = key.sealPassport(passport, pseudonym, 7);
      const opened = key.openPassport(envelope, pseudonym, 7);
      let wrongRecord = 'opened';
      try {
        key.openPassport(envelope, wasm.newPseudonym(), 7);
      } catch {
        wrongRecord = 'refused';
      }
      // The client's path: the browser decodes the envelope natively, the bytes go to WASM.
      const { openPassportJson } = await import('/js/passports.js');
      const native = typeof Uint8Array.prototype.setFromBase64 === 'function';
      const viaBytes = openPassportJson(key, envelope, pseudonym, 7);
      const refusedAsBytes = (sealed) => {
        try {
          openPassportJson(key, sealed, pseudonym, 7);
          return 'opened';
        } catch (e) {
          return String(e.message).split(':')[0];
        }
      };
      const raw = Uint8Array.fromBase64(envelope, { alphabet: 'base64url' });
      raw[raw.length - 20] ^= 1;
      const tampered = refusedAsBytes(raw.toBase64({ alphabet: 'base64url', omitPadding: true }));
      const notBase64 = refusedAsBytes(`${envelope.slice(0, -2)}+/`);
      key.free();
      return { pseudonym, envelope, opened, wrongRecord, native, viaBytes, tampered, notBase64, same: (await loadCrypto()) === wasm };
    });
    assert.equal(result.native, true, 'Chromium decodes base64 natively (Uint8Array.prototype.setFromBase64)');
    assert.equal(result.viaBytes, result.opened, 'the bytes path opens to the same JSON text');
    assert.equal(result.tampered, 'decryption_failed', 'a flipped ciphertext byte is refused on the bytes path');
    assert.equal(result.notBase64, 'invalid_encoding', 'a text that is not base64url goes to WASM and is named as such');
    assert.ok(result.pseudonym.length > 0);
    assert.deepEqual(JSON.parse(result.opened), { surname: 'Петрова', first_name: 'Анна', date_of_birth: '1948-03-08', sex: 'female' });
    assert.ok(!result.envelope.includes('Петрова'));
    assert.equal(result.wrongRecord, 'refused', 'a passport does not open under another pseudonym');
    assert.equal(result.same, true, 'the module is loaded once');
  });
});

test('the CSP refuses inline scripts and inline styles, and the tests see each violation', async () => {
  await withSession(browser, { name: 'csp' }, async (s) => {
    await s.goto('/login');
    const ran = await s.page.evaluate(async () => {
      const script = document.createElement('script');
      script.textContent = 'window.__inlineRan = true;';
      document.body.append(script);
      const styled = document.createElement('p');
      styled.setAttribute('style', 'color: red');
      document.body.append(styled);
      await new Promise((resolve) => setTimeout(resolve, 100));
      return Boolean(window.__inlineRan);
    });
    assert.equal(ran, false, 'the inline script did not run');
    const headers = (await s.page.request.get('/')).headers();
    assert.match(headers['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval'/);
    // The harness saw both refusals: this is what makes every other test's assertClean() mean
    // something. They were provoked here, so they are cleared before the final check.
    await s.page.waitForTimeout(100);
    assert.ok(s.cspViolations.some((v) => v.includes('script-src')), s.cspViolations.join('\n'));
    assert.ok(s.cspViolations.some((v) => v.includes('style-src')), s.cspViolations.join('\n'));
    s.cspViolations.length = 0;
    s.consoleErrors.length = 0;
  });
});
