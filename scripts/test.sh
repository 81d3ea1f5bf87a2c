#!/usr/bin/env bash
# Runs every test of palreg: formatting and lints, the Rust test suites (the HTTP API on
# SQLite and on PostgreSQL, client-crypto's vectors, reports, the native client), the WASM
# package's tests in Node, and the browser end-to-end tests in headless Chromium.
# Installs what it needs (PostgreSQL, the wasm32 target, wasm-bindgen-cli, Chromium, npm
# packages) or says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is missing. $2" >&2; exit 1; }
}
need cargo "Install Rust with rustup (https://rustup.rs)."
need node "Install Node.js 20 or later (Debian: apt-get install nodejs)."

echo "== PostgreSQL"
bash scripts/ensure-postgres.sh

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust tests (SQLite and PostgreSQL)"
cargo test --workspace --locked

echo "== WASM package tests (Node): vectors and the WASM <-> native round trip"
bash scripts/test-crypto-js.sh

echo "== browser end-to-end tests (headless Chromium)"
bash scripts/test-e2e.sh

echo "== all tests passed"
