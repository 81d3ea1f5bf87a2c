// WASM benchmark of client-crypto under Node, each figure beside its baseline from the same
// run: bare AES-256-GCM / X25519 / HMAC-SHA256 / Argon2id compiled into the same WASM module
// (feature bench-baseline), and WebCrypto (crypto.subtle) awaited one call at a time.
//
//   scripts/build-wasm.sh --bench && node bench/wasm/bench.mjs
//
// PALREG_BENCH_ROUND_MS sets the length of one round (default 300 ms; 5 rounds, median).
import { readFileSync, existsSync } from "node:fs";
import os from "node:os";

const pkgUrl = new URL("./pkg/", import.meta.url);
if (!existsSync(new URL("palreg_crypto_wasm_bg.wasm", pkgUrl))) {
  console.error("bench/wasm/pkg is missing: run scripts/build-wasm.sh --bench first");
  process.exit(1);
}
const wasm = await import(new URL("palreg_crypto_wasm.js", pkgUrl));
wasm.initSync({ module: readFileSync(new URL("palreg_crypto_wasm_bg.wasm", pkgUrl)) });
if (!wasm.BareAesGcm) {
  console.error("bench/wasm/pkg was built without the bench-baseline feature");
  process.exit(1);
}

const ROUND_MS = Number(process.env.PALREG_BENCH_ROUND_MS ?? 150);
const ROUNDS = 9;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Operations per second of a synchronous op over one round. */
function oneRound(op, ms) {
  let count = 0, batch = 1;
  const start = performance.now();
  for (;;) {
    for (let i = 0; i < batch; i++) op();
    count += batch;
    const elapsed = performance.now() - start;
    if (elapsed >= ms) return (count * 1000) / elapsed;
    batch = Math.min(batch * 2, 1 << 14);
  }
}

/** The same for an async op awaited one call at a time. */
async function oneRoundAsync(op, ms) {
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < ms) { await op(); count++; }
  return (count * 1000) / (performance.now() - start);
}

/**
 * The machine is shared, so an op and its baseline alternate in short rounds and the ratio is
 * the median of the per-round ratios: a burst of load hits both sides of a round alike.
 */
async function compare(op, baseline, { asyncBaseline = false } = {}) {
  const base = (ms) => (asyncBaseline ? oneRoundAsync(baseline, ms) : oneRound(baseline, ms));
  oneRound(op, ROUND_MS / 2);
  await base(ROUND_MS / 2);
  const ops = [], bases = [], ratios = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = oneRound(op, ROUND_MS);
    const b = await base(ROUND_MS);
    ops.push(a); bases.push(b); ratios.push(a / b);
  }
  const best = Math.max(...ops) / Math.max(...bases);
  return { ops: median(ops), baseline: median(bases), ratio: median(ratios), bestRatio: best };
}

const rate = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(1)} /s`);
const time = (x) => { const s = 1 / x; return s >= 1e-3 ? `${(s * 1e3).toFixed(1)} ms` : `${(s * 1e6).toFixed(2)} µs`; };

// The same ~1 KiB passport as the native bench (JSON padded to the 1 KiB bucket).
const passport = {
  surname: "Салтыкова-Щедрина", first_name: "Анна-Мария", patronymic: "Иосифовна",
  date_of_birth: "1938-11-30", sex: "female",
  address: "185035, Республика Карелия, г. Петрозаводск, пр. Ленина, д. 1, кв. 2",
  phone: "+7 (8142) 12-34-56", snils: "112-233-445 95", policy_number: "1050 2030 4050 6070",
  identity_document: { kind: "паспорт РФ", series: "86 04", number: "123456",
    issued_by: "ОВД Октябрьского района г. Петрозаводска", issued_on: "2004-05-06" },
  contact_person: { name: "Салтыков Пётр Иванович", relation: "сын", phone: "8 921 000-00-00" },
  notes: "Проживает одна; ключ у соседки (кв. 3). Аллергия на пенициллин. Плохо слышит.",
};
const passportJson = JSON.stringify(passport);
const PADDED = 1024;

const key = wasm.InstitutionKey.generate(1);
const pseudonym = wasm.newPseudonym();
const sealed = key.sealPassport(passportJson, pseudonym, 7);

const rawKey = crypto.getRandomValues(new Uint8Array(32));
const nonce = crypto.getRandomValues(new Uint8Array(12));
const aad = new Uint8Array(48);
const plain = new Uint8Array(PADDED);
const bare = new wasm.BareAesGcm(rawKey);
const bareCt = bare.encrypt(nonce, aad, plain);
const subtleKey = await crypto.subtle.importKey("raw", rawKey, "AES-GCM", false, ["encrypt", "decrypt"]);
const subtleCt = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, subtleKey, plain));

console.log(`palreg client-crypto WASM bench (Node ${process.version}): passport JSON ` +
  `${new TextEncoder().encode(passportJson).length} B, padded to ${PADDED} B`);
console.log(`${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(2)} at start; each figure and its ` +
  `baseline alternate in ${ROUNDS} rounds of ${ROUND_MS} ms, medians shown\n`);

const rows = [];
const pct = (r) => `${(100 * r).toFixed(0)}%`;
const times = (r) => `${(1 / r).toFixed(2)}x`;
const rateRow = (name, baseName, c, target, met) => rows.push({ name, value: rate(c.ops), baseName,
  base: rate(c.baseline), ratio: pct(c.ratio), best: pct(c.bestRatio), target, met });
const timeRow = (name, baseName, c, target, met) => rows.push({ name, value: time(c.ops), baseName,
  base: time(c.baseline), ratio: times(c.ratio), best: times(c.bestRatio), target, met });

const seal = await compare(() => key.sealPassport(passportJson, pseudonym, 7), () => bare.encrypt(nonce, aad, plain));
rateRow("sealPassport (~1 KiB)", "BareAesGcm.encrypt 1 KiB", seal, "(report)", null);

const open = await compare(() => key.openPassport(sealed, pseudonym, 7), () => bare.decrypt(nonce, aad, bareCt));
rateRow("openPassport (~1 KiB)", "BareAesGcm.decrypt 1 KiB", open, ">= 80%", open.ratio >= 0.8);
const subtle = await compare(
  () => key.openPassport(sealed, pseudonym, 7),
  () => crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, subtleKey, subtleCt),
  { asyncBaseline: true },
);
rows.push({ name: "openPassport (~1 KiB)", value: rate(subtle.ops), baseName: "WebCrypto decrypt, awaited",
  base: rate(subtle.baseline), ratio: `${subtle.ratio.toFixed(1)}x`, best: `${subtle.bestRatio.toFixed(1)}x`,
  target: ">= 4x faster", met: subtle.ratio >= 4 });
const parsed = await compare(() => JSON.parse(key.openPassport(sealed, pseudonym, 7)), () => bare.decrypt(nonce, aad, bareCt));
rateRow("openPassport + JSON.parse", "BareAesGcm.decrypt 1 KiB", parsed, "(report)", null);

const alice = wasm.UserKeyPair.generate();
const envelope = key.wrapFor(alice.publicKey, 42, 7);
const dh = new wasm.BareX25519(crypto.getRandomValues(new Uint8Array(32)));
const peer = new wasm.BareX25519(crypto.getRandomValues(new Uint8Array(32))).publicKey();
const unwrap = await compare(() => alice.openKeyEnvelope(envelope, 42, 7, 1).free(), () => dh.diffieHellman(peer));
timeRow("openKeyEnvelope", "BareX25519.diffieHellman", unwrap, "<= 2x one exchange", 1 / unwrap.ratio <= 2);

const hmac = new wasm.BareHmacSha256(rawKey);
const msg = new TextEncoder().encode("\0\0\0\x21салтыкова-щедрина");
const index = await compare(() => key.blindIndex("surname", " САЛТЫКОВА - Щедрина ", 16), () => hmac.mac8(msg));
rateRow("blindIndex (normalize+HMAC+token)", "BareHmacSha256.mac8", index, "(report)", null);

const file = alice.exportKeyFile("bench passphrase");
const pw = new TextEncoder().encode("bench passphrase");
const salt = new Uint8Array(16);
const unlock = await compare(
  () => wasm.UserKeyPair.importKeyFile(file, "bench passphrase").free(),
  () => wasm.bareArgon2id(pw, salt, 19456, 2, 1),
);
timeRow("importKeyFile (Argon2id 19 MiB t=2)", "bareArgon2id, same parameters", unlock, "(report)", null);

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
console.log(`${pad("operation", 36)} ${lpad("figure", 12)}   ${pad("baseline (same run)", 30)} ${lpad("baseline", 12)}   ` +
  `${lpad("ratio", 7)} ${lpad("best", 7)}   ${pad("target", 20)} met`);
for (const r of rows) {
  const met = r.met === null ? "-" : r.met ? "yes" : "NO";
  console.log(`${pad(r.name, 36)} ${lpad(r.value, 12)}   ${pad(r.baseName, 30)} ${lpad(r.base, 12)}   ` +
    `${lpad(r.ratio, 7)} ${lpad(r.best, 7)}   ${pad(r.target, 20)} ${met}`);
}
console.log(`\nratio: median of the per-round ratios ("met" is judged on it); best: the two sides' fastest rounds,\n` +
  `the least disturbed by other load. Times: how many baseline operations one costs.`);
