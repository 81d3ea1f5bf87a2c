// The WASM half of the WASM <-> native round trip. scripts/test-crypto-js.sh sets
// PALREG_INTEROP_DIR after the native side wrote native.json there; this test opens it, then
// writes wasm.json for the native side to open.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import wasm, { throwsCode } from "./wasm.mjs";

const dir = process.env.PALREG_INTEROP_DIR;
const skip = dir ? false : "PALREG_INTEROP_DIR not set (run scripts/test-crypto-js.sh)";

// Tampers with a character in the middle of a base64url text: it carries six bits of the
// ciphertext, so the text stays valid base64url and only the authentication tag can refuse it.
// (The last character may carry padding bits, which a strict decoder refuses as bad encoding.)
function flipMiddleChar(s) {
  const i = s.length >> 1;
  return s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
}

test("opens what the native crate sealed", { skip }, () => {
  const path = join(dir, "native.json");
  assert.ok(existsSync(path), `${path} was not written by the native side`);
  const doc = JSON.parse(readFileSync(path, "utf8"));
  assert.equal(doc.writer, "native");
  const pair = wasm.UserKeyPair.importKeyFile(doc.key_file, doc.passphrase);
  const key = pair.openKeyEnvelope(doc.key_envelope, doc.user_id, doc.institution_id, doc.key_version);
  const opened = JSON.parse(key.openPassport(doc.passport_envelope, doc.pseudonym, doc.institution_id));
  assert.deepEqual(opened, doc.passport);
  throwsCode(assert, () => key.openPassport(flipMiddleChar(doc.passport_envelope), doc.pseudonym, doc.institution_id),
    "decryption_failed", "tampered");
  throwsCode(assert, () => key.openPassport(doc.passport_envelope, doc.pseudonym, doc.institution_id + 1),
    "decryption_failed", "other institution");
  const n = doc.note;
  assert.equal(key.openNote(n.sealed, n.purpose, doc.pseudonym, doc.institution_id, n.record_id), n.text);
  for (const b of doc.blind_indexes) assert.equal(key.blindIndex(b.field, b.value, b.bits), b.token);
  const c = doc.compound_index;
  assert.equal(key.blindIndexSurnameBirthYear(c.surname, c.birth, c.bits), c.token);
  key.free();
  pair.free();
});

test("seals for the native crate to open", { skip }, () => {
  const userId = 501, institutionId = 12, keyVersion = 2;
  const passphrase = "пароль из WASM, long enough";
  const pair = wasm.UserKeyPair.generate();
  const key = wasm.InstitutionKey.generate(keyVersion);
  const pseudonym = wasm.newPseudonym();
  const passport = {
    surname: "Петров", first_name: "Пётр", patronymic: "Петрович", date_of_birth: "1939-12-31",
    sex: "male", phone: "8 (814) 222-33-44", policy_number: "1234 5678 9012 3456",
    identity_document: { kind: "паспорт РФ", series: "86 01", number: "654321" },
    contact_person: { name: "Петрова Анна", relation: "дочь" },
    notes: "Written in WASM, opened natively.",
  };
  const noteText = "Наблюдение из браузера.";
  const doc = {
    writer: "wasm",
    passphrase,
    key_file: pair.exportKeyFile(passphrase),
    user_id: userId,
    institution_id: institutionId,
    key_version: keyVersion,
    key_envelope: key.wrapFor(pair.publicKey, userId, institutionId),
    pseudonym,
    passport,
    passport_envelope: key.sealPassport(JSON.stringify(passport), pseudonym, institutionId),
    note: { purpose: "observation", record_id: "wasm-record-1", text: noteText,
            sealed: key.sealNote(noteText, "observation", pseudonym, institutionId, "wasm-record-1") },
    blind_indexes: [
      { field: "surname", value: passport.surname, bits: 16, token: key.blindIndex("surname", passport.surname, 16) },
      { field: "policy_number", value: passport.policy_number, bits: 20,
        token: key.blindIndex("policy_number", passport.policy_number, 20) },
    ],
    compound_index: { surname: passport.surname, birth: passport.date_of_birth, bits: 16,
      token: key.blindIndexSurnameBirthYear(passport.surname, passport.date_of_birth, 16) },
  };
  writeFileSync(join(dir, "wasm.json"), JSON.stringify(doc, null, 2));
  key.free();
  pair.free();
});
