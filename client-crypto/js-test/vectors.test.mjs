// Checks every vector of client-crypto/tests/vectors.json against the WASM package, using
// only what the browser can do: keys enter WASM through alice's key file and key envelopes,
// never as raw bytes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import wasm, { throwsCode } from "./wasm.mjs";

const vectors = JSON.parse(readFileSync(new URL("../tests/vectors.json", import.meta.url), "utf8"));
const alice = vectors.users.find((u) => u.name === "alice");
let aliceKeys;
const institutionKeys = new Map();

before(() => {
  aliceKeys = wasm.UserKeyPair.importKeyFile(alice.key_file, alice.passphrase);
  for (const e of vectors.key_envelopes.filter((e) => e.recipient === "alice")) {
    institutionKeys.set(
      e.institution_key,
      aliceKeys.openKeyEnvelope(e.envelope, e.recipient_user_id, e.institution_id, e.key_version),
    );
  }
});

after(() => {
  for (const k of institutionKeys.values()) k.free();
  aliceKeys.free();
});

function key(name) {
  const k = institutionKeys.get(name);
  assert.ok(k, `no envelope to alice for institution key ${name}`);
  return k;
}

test("key file unlocks to alice's key pair; public key readable before unlocking", () => {
  assert.equal(aliceKeys.publicKey, alice.public_key);
  assert.equal(aliceKeys.fingerprint, alice.fingerprint);
  assert.equal(wasm.keyFilePublicKey(alice.key_file), alice.public_key);
  for (const u of vectors.users) assert.equal(wasm.publicKeyFingerprint(u.public_key), u.fingerprint);
});

test("every institution key comes out of its envelope with its version", () => {
  for (const k of vectors.institution_keys) assert.equal(key(k.name).version, k.key_version);
});

test("passport vectors open to their passports", () => {
  for (const p of vectors.passports) {
    const opened = JSON.parse(key(p.institution_key).openPassport(p.envelope, p.pseudonym, p.institution_id));
    assert.deepEqual(opened, p.passport, p.name);
    // Sealing again gives a fresh nonce but the same size bucket.
    const again = key(p.institution_key).sealPassport(JSON.stringify(p.passport), p.pseudonym, p.institution_id);
    assert.notEqual(again, p.envelope);
    assert.equal(again.length, p.envelope.length, `${p.name}: same bucket`);
    assert.deepEqual(JSON.parse(key(p.institution_key).openPassport(again, p.pseudonym, p.institution_id)), p.passport);
    // The decoded bytes (what a browser hands over after Uint8Array.prototype.setFromBase64)
    // open to the same JSON text.
    const bytes = Buffer.from(p.envelope, "base64url");
    const viaBytes = key(p.institution_key).openPassportBytes(bytes, p.pseudonym, p.institution_id);
    assert.equal(viaBytes, key(p.institution_key).openPassport(p.envelope, p.pseudonym, p.institution_id), `${p.name}: bytes`);
    assert.deepEqual([...bytes], [...Buffer.from(p.envelope, "base64url")], `${p.name}: the caller's bytes are left as they were`);
  }
});

test("passport negative vectors fail with their error code as bytes too", () => {
  let checked = 0;
  for (const n of vectors.negative) {
    // Encoding errors belong to the text; Node's decoder would skip what the strict one refuses.
    if (n.format !== "passport" || n.error === "invalid_encoding") continue;
    const bytes = Buffer.from(n.input, "base64url");
    throwsCode(assert, () => key(n.institution_key).openPassportBytes(bytes, n.pseudonym, n.institution_id), n.error, `bytes: ${n.name}`);
    checked++;
  }
  assert.ok(checked >= 12, `only ${checked} passport negative vectors checked as bytes`);
});

test("note vectors open to their text", () => {
  for (const n of vectors.notes) {
    const text = key(n.institution_key).openNote(n.sealed, n.purpose, n.pseudonym, n.institution_id, n.record_id);
    assert.equal(text, n.text, n.name);
  }
});

test("blind index vectors give their tokens, and normalization its forms", () => {
  for (const b of vectors.blind_indexes) {
    assert.equal(wasm.normalizeForIndex(b.field, b.input), b.normalized);
    assert.equal(key(b.institution_key).blindIndex(b.field, b.input, b.bits), b.token, `${b.field} ${b.input}`);
  }
  for (const b of vectors.compound_blind_indexes) {
    assert.equal(key(b.institution_key).blindIndexSurnameBirthYear(b.surname, b.birth, b.bits), b.token);
  }
  for (const n of vectors.normalization) {
    if ("normalized" in n) assert.equal(wasm.normalizeForIndex(n.field, n.input), n.normalized, n.input);
    else throwsCode(assert, () => wasm.normalizeForIndex(n.field, n.input), n.error, n.input);
  }
});

test("indexToken indexes each field at its length: the date of birth 6 bits shorter", () => {
  let dates = 0;
  for (const b of vectors.blind_indexes) {
    const k = key(b.institution_key);
    const bits = b.field === "date_of_birth" ? Math.max(1, b.bits - 6) : b.bits;
    assert.equal(wasm.blindIndexBits(b.field, b.bits), bits, `${b.field} ${b.bits}`);
    assert.equal(k.indexToken(b.field, b.input, b.bits), k.blindIndex(b.field, b.input, bits), `${b.field} ${b.input}`);
    if (b.field !== "date_of_birth") assert.equal(k.indexToken(b.field, b.input, b.bits), b.token);
    else dates++;
  }
  assert.ok(dates > 0, "the vectors have dates of birth");
  assert.equal(wasm.blindIndexBits("date_of_birth", 12), 6);
  assert.equal(wasm.blindIndexBits("date_of_birth", 5), 1);
  throwsCode(assert, () => wasm.blindIndexBits("date_of_birth", 65), "invalid_bits", "65 bits");
});

test("pseudonyms and bit-length recommendations", () => {
  for (const c of vectors.pseudonyms.from_bits) assert.equal(wasm.parsePseudonym(c.pseudonym), c.pseudonym);
  for (const c of vectors.pseudonyms.canonical) assert.equal(wasm.parsePseudonym(c.input), c.pseudonym);
  for (const bad of vectors.pseudonyms.invalid) throwsCode(assert, () => wasm.parsePseudonym(bad), "invalid_pseudonym", bad);
  const fresh = wasm.newPseudonym();
  assert.match(fresh, /^[0-9A-HJKMNP-TV-Z]{16}$/);
  for (const c of vectors.bit_recommendations) {
    const existing = Uint8Array.from(c.existing_bits);
    if ("error" in c) {
      throwsCode(assert, () => wasm.recommendBlindIndexBits(c.patients, existing), c.error, `R=${c.patients}`);
    } else {
      const r = wasm.recommendBlindIndexBits(c.patients, existing);
      assert.deepEqual([r.min, r.max], [c.min, c.max], `R=${c.patients}`);
      r.free();
    }
  }
});

// Blind-index tokens are only parsed by the server (native shape checks).
const SERVER_ONLY = new Set(["blind_index"]);

test("negative vectors fail with their error code", () => {
  let checked = 0;
  for (const n of vectors.negative) {
    if (SERVER_ONLY.has(n.format)) continue;
    const what = `${n.format}: ${n.name}`;
    const open = {
      passport: () => key(n.institution_key).openPassport(n.input, n.pseudonym, n.institution_id),
      note: () => key(n.institution_key).openNote(n.input, n.purpose, n.pseudonym, n.institution_id, n.record_id),
      key_envelope: () => aliceKeys.openKeyEnvelope(n.input, n.recipient_user_id, n.institution_id, n.key_version),
      key_file: () => wasm.UserKeyPair.importKeyFile(n.input, n.passphrase),
      public_key: () => wasm.publicKeyFingerprint(n.input),
    }[n.format];
    assert.ok(open, `no WASM check for format ${n.format}`);
    throwsCode(assert, open, n.error, what);
    checked++;
  }
  assert.ok(checked >= 40, `only ${checked} negative vectors checked`);
});

test("ids must be safe integers; raw keys are not reachable from JavaScript", () => {
  const k = key("inst7-v3");
  const p = vectors.passports[0];
  throwsCode(assert, () => k.openPassport(p.envelope, p.pseudonym, 7.5), "invalid_input", "fractional id");
  throwsCode(assert, () => k.openPassport(p.envelope, p.pseudonym, 2 ** 60), "invalid_input", "unsafe id");
  // The handles' whole JavaScript surface: nothing that returns key bytes.
  const surface = (obj) =>
    Object.getOwnPropertyNames(Object.getPrototypeOf(obj)).filter((n) => !n.startsWith("__")).sort();
  assert.deepEqual(surface(k), ["blindIndex", "blindIndexSurnameBirthYear", "constructor", "fingerprint", "free",
    "indexToken", "linkTo", "openNote", "openPassport", "openPassportBytes", "sealNote", "sealPassport", "verifyLink", "version",
    "wrapFor"]);
  assert.deepEqual(surface(aliceKeys), ["constructor", "exportKeyFile", "fingerprint", "free", "openKeyEnvelope",
    "publicKey"]);
  assert.equal(wasm.BareAesGcm, undefined, "bench baselines must not be in web/pkg");
});

test("a wrong passphrase is a clear error and a fresh key file round-trips", () => {
  const pair = wasm.UserKeyPair.generate();
  const file = pair.exportKeyFile("eight chars or more");
  throwsCode(assert, () => wasm.UserKeyPair.importKeyFile(file, "eight chars or mor3"), "wrong_passphrase", "wrong passphrase");
  throwsCode(assert, () => pair.exportKeyFile("short"), "weak_passphrase", "short passphrase");
  const back = wasm.UserKeyPair.importKeyFile(file, "eight chars or more");
  assert.equal(back.publicKey, pair.publicKey);
  // The institution key travels from one handle to another only inside an envelope.
  const inst = wasm.InstitutionKey.generate(1);
  const env = inst.wrapFor(pair.publicKey, 9, 3);
  const opened = back.openKeyEnvelope(env, 9, 3, 1);
  const pseudonym = wasm.newPseudonym();
  const sealed = inst.sealNote("текст", "observation", pseudonym, 3, "r1");
  assert.equal(opened.openNote(sealed, "observation", pseudonym, 3, "r1"), "текст");
  throwsCode(assert, () => back.openKeyEnvelope(env, 10, 3, 1), "decryption_failed", "other user id");
  for (const h of [pair, back, inst, opened]) h.free();
});

test("institution key fingerprints and key chain links match the vectors", () => {
  for (const k of vectors.institution_keys) {
    if (!institutionKeys.has(k.name)) continue;
    assert.equal(key(k.name).fingerprint(k.institution_id), k.fingerprint);
  }
  assert.ok(vectors.key_chain.length > 0);
  for (const l of vectors.key_chain) {
    assert.equal(key(l.from).linkTo(key(l.to), l.institution_id), l.link);
    assert.equal(key(l.from).verifyLink(key(l.to), l.institution_id, l.link), true);
    for (const other of vectors.key_chain.filter((o) => o.to !== l.to)) {
      assert.equal(key(l.from).verifyLink(key(l.to), l.institution_id, other.link), false);
    }
  }
  assert.throws(() => key("inst7-v3").verifyLink(key("inst7-v4"), 7, "AAAA"), /invalid_length/);
});
