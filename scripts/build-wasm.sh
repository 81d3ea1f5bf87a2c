#!/usr/bin/env bash
# Builds the browser crypto package: client-crypto/wasm for wasm32-unknown-unknown (release),
# then wasm-bindgen --target web into web/pkg/ (git-ignored).
#
#   scripts/build-wasm.sh           -> web/pkg/
#   scripts/build-wasm.sh --bench   -> bench/wasm/pkg/ with the bench-baseline feature
#                                      (raw-key baselines: never serve this build)
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130   # must equal the `=` pin of wasm-bindgen in client-crypto/wasm/Cargo.toml
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT_DIR="web/pkg"
FEATURES=()
if [[ "${1:-}" == "--bench" ]]; then
  OUT_DIR="bench/wasm/pkg"
  FEATURES=(--features bench-baseline)
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--bench]" >&2
  exit 2
fi

die() { echo "build-wasm: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "build-wasm: installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown || die "could not install the wasm32-unknown-unknown target (rustup target add wasm32-unknown-unknown)"
fi

installed_bindgen_version() {
  wasm-bindgen --version 2>/dev/null | awk '{print $2}'
}
if [[ "$(installed_bindgen_version)" != "$WASM_BINDGEN_VERSION" ]]; then
  echo "build-wasm: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (found: $(installed_bindgen_version || true))"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" \
    || die "could not install wasm-bindgen-cli $WASM_BINDGEN_VERSION (cargo install wasm-bindgen-cli --version $WASM_BINDGEN_VERSION)"
  [[ "$(installed_bindgen_version)" == "$WASM_BINDGEN_VERSION" ]] \
    || die "wasm-bindgen on PATH is not $WASM_BINDGEN_VERSION; put ~/.cargo/bin first on PATH"
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# One codegen unit and LTO make the module smaller and its hot loops faster; only this build
# uses them, through cargo's environment overrides of the release profile.
CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --release --target wasm32-unknown-unknown -p palreg-crypto-wasm "${FEATURES[@]}"

rm -rf "$OUT_DIR"
wasm-bindgen --target web --out-dir "$OUT_DIR" \
  "$TARGET_DIR/wasm32-unknown-unknown/release/palreg_crypto_wasm.wasm"
# Node needs this to load the generated .js files as ES modules; browsers ignore it.
printf '{\n  "name": "palreg-crypto-wasm",\n  "type": "module",\n  "main": "palreg_crypto_wasm.js",\n  "types": "palreg_crypto_wasm.d.ts"\n}\n' > "$OUT_DIR/package.json"

echo "build-wasm: $OUT_DIR/ ($(wc -c < "$OUT_DIR/palreg_crypto_wasm_bg.wasm") bytes of wasm)"
