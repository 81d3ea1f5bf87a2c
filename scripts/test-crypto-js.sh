#!/usr/bin/env bash
# Tests the browser crypto package: builds web/pkg if it is missing or older than its sources,
# checks every vector of client-crypto/tests/vectors.json in WASM under Node, and runs the
# WASM <-> native round trip in both directions (native seals -> WASM opens; WASM seals ->
# native opens).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v node >/dev/null || { echo "test-crypto-js: node (>= 20) is required" >&2; exit 1; }

WASM=web/pkg/palreg_crypto_wasm_bg.wasm
if [[ ! -f "$WASM" ]] || [[ -n "$(find client-crypto/src client-crypto/wasm/src client-crypto/Cargo.toml \
      client-crypto/wasm/Cargo.toml Cargo.lock scripts/build-wasm.sh -newer "$WASM" -print -quit 2>/dev/null)" ]]; then
  scripts/build-wasm.sh
fi

INTEROP_DIR="$(mktemp -d)"
trap 'rm -rf "$INTEROP_DIR"' EXIT

# Native -> WASM: the native crate seals, the Node test opens.
cargo run --quiet -p client-crypto --example interop -- write "$INTEROP_DIR/native.json"

# Every vector in WASM, then the WASM half of the round trip (which writes wasm.json).
PALREG_INTEROP_DIR="$INTEROP_DIR" node --test \
  client-crypto/js-test/vectors.test.mjs client-crypto/js-test/interop.test.mjs

# WASM -> native: the native crate opens what WASM sealed.
cargo run --quiet -p client-crypto --example interop -- check "$INTEROP_DIR/wasm.json"
