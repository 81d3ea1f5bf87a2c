#!/usr/bin/env bash
# Builds palreg (the server and, when present, the browser client's WASM package) and runs it
# on the embedded SQLite database in ./data. Settings come from PALREG_* variables (README).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
    echo "error: 'cargo' is missing. Install Rust with rustup (https://rustup.rs)." >&2
    exit 1
}
if [ -f scripts/build-wasm.sh ]; then
    bash scripts/build-wasm.sh
fi
cargo build --release --locked -p palreg-server
exec ./target/release/palreg serve "$@"
