// The measuring half of the Chromium bench (bench/wasm/browser.mjs serves it and reads the
// result): runs inside the page, with the bench build of the WASM package (bench/wasm/pkg) and
// the client's own modules from web/js.
//
// 1. A page of 1,000 search results, as the Patient Search page handles it: `openResults` from
//    web/js/passports.js (open each passport with the key of its version, JSON.parse, drop the
//    blind index's false positives with normalizeForIndex) — the same function the page calls —
//    then the results table built with web/js/ui.js `dataTable` and laid out. Each round times
//    one whole page; p50/p99 over the rounds, beside 1,000 bare AES-GCM decrypts of the same
//    size in the same WASM module.
// 2. Issue #3's figures in the browser: opening a passport as the client does it
//    (`openPassportJson` of web/js/passports.js: the base64url decoded natively, the bytes
//    opened by `openPassportBytes`) against `BareAesGcm.decrypt` and against WebCrypto
//    `crypto.subtle.decrypt` awaited one at a time (the same rounds-and-ratios method as
//    bench/wasm/bench.mjs under Node); `openPassport` of the text, reported beside them.

import init, * as wasm from './pkg/palreg_crypto_wasm.js';
import { openPassportJson, openResults } from '../../web/js/passports.js';
import { dataTable } from '../../web/js/ui.js';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Nearest-rank percentile. */
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/** Ops per second of `op` over about `ms`, in doubling batches (as bench.mjs). */
function oneRound(op, ms) {
  let count = 0;
  let batch = 1;
  const start = performance.now();
  for (;;) {
    for (let i = 0; i < batch; i++) op();
    count += batch;
    const elapsed = performance.now() - start;
    if (elapsed >= ms) return (count * 1000) / elapsed;
    batch = Math.min(batch * 2, 1 << 14);
  }
}

async function oneRoundAsync(op, ms) {
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    await op();
    count++;
  }
  return (count * 1000) / (performance.now() - start);
}

/** An op and its baseline alternate in short rounds; the ratio is the median per-round ratio. */
async function compare(op, baseline, { rounds, roundMs, asyncBaseline = false }) {
  const base = (ms) => (asyncBaseline ? oneRoundAsync(baseline, ms) : oneRound(baseline, ms));
  oneRound(op, roundMs / 2);
  await base(roundMs / 2);
  const ops = [];
  const bases = [];
  const ratios = [];
  for (let r = 0; r < rounds; r++) {
    const a = oneRound(op, roundMs);
    const b = await base(roundMs);
    ops.push(a);
    bases.push(b);
    ratios.push(a / b);
  }
  return { ops: median(ops), baseline: median(bases), ratio: median(ratios), best: Math.max(...ops) / Math.max(...bases) };
}

const FIRST = ['Анна-Мария', 'Пётр', 'Евдокия', 'Степан', 'Зоя', 'Лука', 'Ольга', 'Игнат', 'Таисия', 'Ефим'];

/** The ~1 KiB passport of bench.mjs (and the native bench), varied per patient. */
function passportOf(i) {
  return {
    surname: 'Салтыкова-Щедрина', first_name: FIRST[i % FIRST.length], patronymic: 'Иосифовна',
    date_of_birth: `19${30 + (i % 40)}-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`, sex: 'female',
    address: `185035, Республика Карелия, г. Петрозаводск, пр. Ленина, д. ${1 + (i % 90)}, кв. ${2 + (i % 200)}`,
    phone: '+7 (8142) 12-34-56', snils: '112-233-445 95', policy_number: '1050 2030 4050 6070',
    identity_document: { kind: 'паспорт РФ', series: '86 04', number: String(100000 + i), issued_by: 'ОВД Октябрьского района г. Петрозаводска', issued_on: '2004-05-06' },
    contact_person: { name: 'Салтыков Пётр Иванович', relation: 'сын', phone: '8 921 000-00-00' },
    notes: 'Проживает одна; ключ у соседки (кв. 3). Аллергия на пенициллин. Плохо слышит.',
  };
}

const INSTITUTION = 7;
const PADDED = 1024;

export async function run({ results = 1000, pageRounds = 30, rounds = 9, roundMs = 150 } = {}) {
  await init({ module_or_path: new URL('./pkg/palreg_crypto_wasm_bg.wasm', import.meta.url) });
  if (!wasm.BareAesGcm) throw new Error('bench/wasm/pkg was built without the bench-baseline feature');
  const key = wasm.InstitutionKey.generate(1);
  const keys = new Map([[1, key]]);

  // A page of search results as the API returns them, every item a different patient. The search
  // typed a surname that every item matches after normalization (the worst case: nothing is
  // dropped, every row is rendered), typed in capitals with spaces around.
  const typed = [['surname', ' САЛТЫКОВА-ЩЕДРИНА ']];
  const items = [];
  let jsonBytes = 0;
  for (let i = 0; i < results; i++) {
    const passport = JSON.stringify({ ...passportOf(i), surname: i % 2 ? 'Салтыкова-Щедрина' : 'салтыкова-щедрина' });
    const pseudonym = wasm.newPseudonym();
    jsonBytes += new TextEncoder().encode(passport).length;
    items.push({
      id: i + 1, pseudonym, institution_id: INSTITUTION, passport_key_version: 1,
      passport: key.sealPassport(passport, pseudonym, INSTITUTION),
      record: { diagnosis_id: 1 + (i % 5), status: 'registered' },
    });
  }
  const codes = new Map([[1, 'C16.9'], [2, 'C34.1'], [3, 'C50.9'], [4, 'C61'], [5, 'C18.7']]);
  const name = (p) => [p.surname, p.first_name, p.patronymic].filter(Boolean).join(' ');
  const host = document.createElement('div');
  document.body.append(host);

  /** One page: open + parse + filter (and, with `render`, the table as the page draws it). */
  function onePage(render) {
    const t0 = performance.now();
    const shown = openResults(keys, items, INSTITUTION, typed, wasm.normalizeForIndex);
    const t1 = performance.now();
    if (shown.length !== results) throw new Error(`expected ${results} results, got ${shown.length}`);
    if (render) {
      const table = dataTable({
        caption: `${shown.length} patients found`,
        columns: [
          { label: 'Name', rowHeader: true, render: (r) => { const a = document.createElement('a'); a.href = `#/patients/${r.item.id}`; a.textContent = name(r.passport); return a; } },
          { label: 'Date of birth', render: (r) => r.passport.date_of_birth },
          { label: 'Diagnosis', render: (r) => codes.get(r.item.record.diagnosis_id) ?? '' },
          { label: 'Status', render: (r) => r.item.record.status },
        ],
        rows: shown,
      });
      host.replaceChildren(table);
      void host.offsetHeight; // forces style and layout of the new table
    }
    return { open: t1 - t0, total: performance.now() - t0 };
  }

  const bare = new wasm.BareAesGcm(crypto.getRandomValues(new Uint8Array(32)));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aad = new Uint8Array(48);
  const bareCt = bare.encrypt(nonce, aad, new Uint8Array(PADDED));
  const barePage = () => {
    const t0 = performance.now();
    for (let i = 0; i < results; i++) bare.decrypt(nonce, aad, bareCt);
    return performance.now() - t0;
  };

  for (let i = 0; i < 3 && pageRounds > 0; i++) {
    onePage(true);
    barePage();
  }
  const opens = [];
  const totals = [];
  const bares = [];
  for (let r = 0; r < pageRounds; r++) {
    const { open, total } = onePage(true);
    opens.push(open);
    totals.push(total);
    bares.push(barePage());
  }
  host.remove();
  const stats = (xs) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), min: Math.min(...xs), max: Math.max(...xs) });
  const page = { results, rounds: pageRounds, passportJsonBytes: Math.round(jsonBytes / results), open: stats(opens), total: stats(totals), bare: stats(bares) };

  // Issue #3 in the browser.
  const single = items[0];
  const subtleKey = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)), 'AES-GCM', false, ['encrypt', 'decrypt']);
  const subtleCt = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, subtleKey, new Uint8Array(PADDED)));
  // The client's path (web/js/passports.js): the browser decodes the base64url natively.
  const openOne = () => openPassportJson(key, single.passport, single.pseudonym, INSTITUTION);
  const openText = () => key.openPassport(single.passport, single.pseudonym, INSTITUTION);
  const opts = { rounds, roundMs };
  const bareOne = () => bare.decrypt(nonce, aad, bareCt);
  const vsBare = await compare(openOne, bareOne, opts);
  const vsSubtle = await compare(openOne, () => crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, subtleKey, subtleCt), { ...opts, asyncBaseline: true });
  const text = await compare(openText, bareOne, opts);
  const parsed = await compare(() => JSON.parse(openOne()), bareOne, opts);
  key.free();
  bare.free();
  return { userAgent: navigator.userAgent, crossOriginIsolated, page, vsBare, vsSubtle, text, parsed };
}
