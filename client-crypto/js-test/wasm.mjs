// Loads the built web/pkg package synchronously (Node has no fetch of file: URLs for init()).
import { readFileSync } from "node:fs";
import * as wasm from "../../web/pkg/palreg_crypto_wasm.js";

const bytes = readFileSync(new URL("../../web/pkg/palreg_crypto_wasm_bg.wasm", import.meta.url));
wasm.initSync({ module: bytes });

export default wasm;

/** Asserts that fn throws an Error whose message starts with `code:`. */
export function throwsCode(assert, fn, code, what) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, `${what}: threw a non-Error ${e}`);
    assert.ok(e.message.startsWith(`${code}:`), `${what}: expected ${code}, got "${e.message}"`);
    return true;
  });
}
