#!/usr/bin/env bash
# The client-crypto WASM bench in headless Debian Chromium (bench/wasm/browser.mjs): a page of
# 1,000 search results decrypted as the Patient Search page does it (target <= 100 ms), and
# openPassport against bare AES-GCM in WASM and against WebCrypto, in the same run. Prints the
# load average; nothing here fails on a missed target.
#
#   scripts/bench-browser.sh
#
# Builds bench/wasm/pkg (the bench-baseline build, never served) when it is missing or older
# than its sources, and installs playwright-core into tests/e2e/node_modules (no browser
# download: PALREG_BENCH_CHROMIUM, default /usr/bin/chromium).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "bench-browser: $*" >&2; exit 1; }
command -v node >/dev/null || die "node (>= 20) is required"
CHROMIUM="${PALREG_BENCH_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM (Debian: apt-get install chromium), or set PALREG_BENCH_CHROMIUM"

WASM=bench/wasm/pkg/palreg_crypto_wasm_bg.wasm
if [[ ! -f "$WASM" ]] || [[ -n "$(find client-crypto/src client-crypto/wasm/src client-crypto/Cargo.toml \
      client-crypto/wasm/Cargo.toml Cargo.lock scripts/build-wasm.sh -newer "$WASM" -print -quit 2>/dev/null)" ]]; then
  bash scripts/build-wasm.sh --bench
fi

if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

PALREG_BENCH_CHROMIUM="$CHROMIUM" exec node bench/wasm/browser.mjs
