// The WASM crypto bench in headless Debian Chromium (never a browser Playwright downloads):
// serves bench/wasm/browser-page.mjs, the bench build of the WASM package (bench/wasm/pkg) and
// the client's modules (web/js) from a local HTTP server, runs the page's measurements and
// prints them with the load average.
//
//   scripts/bench-browser.sh          (builds bench/wasm/pkg when missing, installs playwright-core)
//
// PALREG_BENCH_CHROMIUM: the browser (default /usr/bin/chromium); PALREG_BENCH_ROUND_MS: one
// round of the #3 figures (default 150 ms, 9 rounds); PALREG_BENCH_PAGE_ROUNDS: rounds of the
// 1,000-result page (default 30; 0 skips the page and measures only the #3 figures).
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.PALREG_BENCH_CHROMIUM ?? '/usr/bin/chromium';
const ROUND_MS = Number(process.env.PALREG_BENCH_ROUND_MS ?? 150);
const PAGE_ROUNDS = Number(process.env.PALREG_BENCH_PAGE_ROUNDS ?? 30);
const TARGET_MS = 100;

if (!existsSync(join(ROOT, 'bench/wasm/pkg/palreg_crypto_wasm_bg.wasm'))) {
  console.error('bench/wasm/pkg is missing: run scripts/build-wasm.sh --bench first');
  process.exit(1);
}
const require = createRequire(join(ROOT, 'tests/e2e/package.json'));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  console.error('playwright-core is missing: (cd tests/e2e && npm ci --ignore-scripts)');
  process.exit(1);
}

// Only these folders are served; nothing else of the checkout.
const SERVED = ['bench/wasm/', 'web/js/'];
const TYPES = { '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const server = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
  if (path === '') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><meta charset="utf-8"><link rel="icon" href="data:,"><title>palreg WASM bench</title><body></body></html>');
    return;
  }
  const file = normalize(join(ROOT, path));
  if (!SERVED.some((dir) => file.startsWith(join(ROOT, dir)))) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}/`;

const load = os.loadavg();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let result;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(base);
  page.setDefaultTimeout(600_000);
  result = await page.evaluate(
    async (opts) => (await import('/bench/wasm/browser-page.mjs')).run(opts),
    { results: 1000, pageRounds: PAGE_ROUNDS, rounds: 9, roundMs: ROUND_MS },
  );
  if (errors.length) throw new Error(`the bench page reported errors:\n${errors.join('\n')}`);
} finally {
  await browser.close();
  server.close();
}

const ms = (x) => `${x.toFixed(1)} ms`;
const rate = (x) => (x >= 1e3 ? `${(x / 1e3).toFixed(1)} k/s` : `${x.toFixed(1)} /s`);
const pct = (r) => `${(100 * r).toFixed(0)}%`;
const { page, vsBare, vsSubtle, text, parsed } = result;

console.log(`palreg client-crypto WASM bench in Chromium: ${result.userAgent}`);
console.log(`${os.cpus().length} CPUs, load average ${load.map((l) => l.toFixed(2)).join(' ')} at start (1/5/15 min), ${os.loadavg()[0].toFixed(2)} at the end\n`);

if (page.rounds === 0) {
  console.log('A page of search results: skipped (PALREG_BENCH_PAGE_ROUNDS=0)\n');
} else {
  console.log(`A page of ${page.results} search results as the Patient Search page handles it (web/js/passports.js openResults:`);
  console.log(`open + JSON.parse + false-positive filter; passports ~${page.passportJsonBytes} B of JSON, padded to 1 KiB), ${page.rounds} rounds:`);
  console.log(`  ${'figure'.padEnd(44)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'min'.padStart(9)}   target`);
  const line = (label, s, target = '') => console.log(`  ${label.padEnd(44)} ${ms(s.p50).padStart(9)} ${ms(s.p99).padStart(9)} ${ms(s.min).padStart(9)}   ${target}`);
  const verdict = (x) => (x <= TARGET_MS ? 'met' : 'NOT met');
  line('decrypt 1,000 results (open + parse + filter)', page.open, `<= ${TARGET_MS} ms: p50 ${verdict(page.open.p50)}, p99 ${verdict(page.open.p99)}`);
  line('  + results table built and laid out', page.total, '(report)');
  line('baseline: 1,000 x BareAesGcm.decrypt 1 KiB', page.bare, '(same run)');
  console.log(`  the crypto floor is ${pct(page.bare.p50 / page.open.p50)} of the decrypt figure (p50s)\n`);
}

console.log(`Issue #3 in Chromium (each figure and its baseline alternate in 9 rounds of ${ROUND_MS} ms; medians):`);
const row = (name, value, baseName, baseValue, ratio, best, target) =>
  console.log(`  ${name.padEnd(28)} ${value.padStart(10)}   ${baseName.padEnd(30)} ${baseValue.padStart(10)}   ${ratio.padStart(6)} ${best.padStart(6)}   ${target}`);
row('operation', 'figure', 'baseline (same run)', 'baseline', 'ratio', 'best', 'target');
row('open passport (~1 KiB)', rate(vsBare.ops), 'BareAesGcm.decrypt 1 KiB', rate(vsBare.baseline), pct(vsBare.ratio), pct(vsBare.best), `>= 80%: ${vsBare.ratio >= 0.8 ? 'met' : 'NOT met'}`);
row('open passport (~1 KiB)', rate(vsSubtle.ops), 'WebCrypto decrypt, awaited', rate(vsSubtle.baseline), `${vsSubtle.ratio.toFixed(1)}x`, `${vsSubtle.best.toFixed(1)}x`, `>= 4x faster: ${vsSubtle.ratio >= 4 ? 'met' : 'NOT met'}`);
row('openPassport of the text', rate(text.ops), 'BareAesGcm.decrypt 1 KiB', rate(text.baseline), pct(text.ratio), pct(text.best), '(report)');
row('open passport + JSON.parse', rate(parsed.ops), 'BareAesGcm.decrypt 1 KiB', rate(parsed.baseline), pct(parsed.ratio), pct(parsed.best), '(report)');
console.log('\nopen passport: web/js/passports.js openPassportJson, as the client opens one: setFromBase64 into a reused');
console.log('buffer, then openPassportBytes; openPassport of the text: the envelope copied in as text, decoded in WASM.');
console.log('\nratio: median of the per-round ratios (judged); best: the two sides\' fastest rounds.');
