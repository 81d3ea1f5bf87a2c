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
# wasm-bindgen copies a string argument into WASM memory with a JavaScript loop over its
# characters as long as they are ASCII, and only then falls back to TextEncoder.encodeInto.
# For the ~1.4 KB base64url envelopes this module is handed, that loop costs more than a
# fifth of opening a passport in Node 20, while encodeInto does the same copy about 20x
# faster (bench/wasm). Dropping the loop sends every string through encodeInto, which
# handles ASCII and non-ASCII alike. The glue is pinned with wasm-bindgen, so the pattern is
# exact; if it ever changes, stop rather than ship unpatched glue unnoticed.
GLUE="$OUT_DIR/palreg_crypto_wasm.js"
perl -0pi -e 's/\n(\s*)for \(; offset < len; offset\+\+\) \{\n\s*const code = arg\.charCodeAt\(offset\);\n\s*if \(code > 0x7F\) break;\n\s*mem\[ptr \+ offset\] = code;\n\s*\}\n/\n$1\/\/ palreg: ASCII copy loop removed (scripts\/build-wasm.sh); encodeInto below copies all.\n/ and $patched++; END { exit($patched == 1 ? 0 : 3) }' "$GLUE" \
  || die "could not patch passStringToWasm0 in $GLUE (wasm-bindgen glue changed?): update scripts/build-wasm.sh"

# Node needs this to load the generated .js files as ES modules; browsers ignore it.
printf '{\n  "name": "palreg-crypto-wasm",\n  "type": "module",\n  "main": "palreg_crypto_wasm.js",\n  "types": "palreg_crypto_wasm.d.ts"\n}\n' > "$OUT_DIR/package.json"

echo "build-wasm: $OUT_DIR/ ($(wc -c < "$OUT_DIR/palreg_crypto_wasm_bg.wasm") bytes of wasm)"
