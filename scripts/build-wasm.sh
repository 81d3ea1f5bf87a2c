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
# characters as long as they are ASCII, then grows the buffer to 3 bytes a character, encodes
# the rest with TextEncoder.encodeInto and shrinks it again. Measured (bench/wasm, and a CPU
# profile of openPassport in Chromium): for the ~1.4 KB base64url envelopes the loop cost more
# than a fifth of opening a passport in Node 20, where encodeInto does the same copy about 20x
# faster; but each encodeInto call costs ~1 µs in Chromium however short the string, more
# than the loop over a 16-character pseudonym; and the two reallocations are more calls into
# WASM and a copy of the buffer on every string. The function is replaced by one that copies
# short strings with the loop and longer ones with encodeInto, straight into a buffer of one
# byte a character — enough for ASCII, so a pseudonym or an envelope costs one allocation and
# no reallocation — and only when a character does not fit grows the buffer for the rest. The
# glue is pinned with wasm-bindgen, so the original is matched exactly; if it ever changes,
# stop rather than ship unpatched glue unnoticed.
GLUE="$OUT_DIR/palreg_crypto_wasm.js"
PALREG_PASS_STRING='function passStringToWasm0(arg, malloc, realloc) {
    // palreg: replaced by scripts/build-wasm.sh (no reallocation for ASCII; short strings
    // copied by a loop, long ones by encodeInto).
    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;
    let read = 0;
    let offset = 0;
    if (len <= 64) {
        const mem = getUint8ArrayMemory0();
        for (; offset < len; offset++) {
            const code = arg.charCodeAt(offset);
            if (code > 0x7F) break;
            mem[ptr + offset] = code;
        }
        read = offset;
    } else {
        const head = cachedTextEncoder.encodeInto(arg, getUint8ArrayMemory0().subarray(ptr, ptr + len));
        read = head.read;
        offset = head.written;
    }
    if (read !== arg.length) {
        const rest = arg.slice(read);
        ptr = realloc(ptr, len, len = offset + rest.length * 3, 1) >>> 0;
        const tail = cachedTextEncoder.encodeInto(rest, getUint8ArrayMemory0().subarray(ptr + offset, ptr + len));
        offset += tail.written;
        ptr = realloc(ptr, len, offset, 1) >>> 0;
    }
    WASM_VECTOR_LEN = offset;
    return ptr;
}
' perl -0pi -e 's/\nfunction passStringToWasm0\(arg, malloc, realloc\) \{\n(?:(?!\n\}\n).)*?if \(code > 0x7F\) break;(?:(?!\n\}\n).)*?cachedTextEncoder\.encodeInto\(arg, view\);(?:(?!\n\}\n).)*?\n\}\n/\n$ENV{PALREG_PASS_STRING}/s and $patched++; END { exit($patched == 1 ? 0 : 3) }' "$GLUE" \
  || die "could not replace passStringToWasm0 in $GLUE (wasm-bindgen glue changed?): update scripts/build-wasm.sh"

# Node needs this to load the generated .js files as ES modules; browsers ignore it.
printf '{\n  "name": "palreg-crypto-wasm",\n  "type": "module",\n  "main": "palreg_crypto_wasm.js",\n  "types": "palreg_crypto_wasm.d.ts"\n}\n' > "$OUT_DIR/package.json"

echo "build-wasm: $OUT_DIR/ ($(wc -c < "$OUT_DIR/palreg_crypto_wasm_bg.wasm") bytes of wasm)"
