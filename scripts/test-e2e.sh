#!/usr/bin/env bash
# End-to-end tests of the browser client: a real `palreg serve` (TLS on, as in production, with a
# fresh SQLite database in a temporary folder) driven by headless Debian Chromium through
# playwright-core (never a browser that Playwright downloads). Screenshots of every page go to
# test-artifacts/screenshots/, the server's log to test-artifacts/e2e-server.log.
#
#   scripts/test-e2e.sh                       all tests (tests/e2e/*.test.mjs)
#   scripts/test-e2e.sh tests/e2e/auth.test.mjs   some of them
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

die() { echo "test-e2e: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "'node' is missing: install Node.js 20 or later (Debian: apt-get install nodejs npm)."
command -v npm >/dev/null 2>&1 || die "'npm' is missing: install it with Node.js (Debian: apt-get install npm)."
command -v cargo >/dev/null 2>&1 || die "'cargo' is missing: install Rust with rustup (https://rustup.rs)."
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "Node.js 20 or later is needed (found $(node --version))."

CHROMIUM="${PALREG_E2E_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing Chromium from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq chromium >/dev/null
    fi
    [ -x "$CHROMIUM" ] || die "Chromium is missing at $CHROMIUM. Install Debian's package as root (apt-get install chromium) or point PALREG_E2E_CHROMIUM at a Chromium binary."
fi

echo "== npm ci (tests/e2e)"
(cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

if [ ! -f web/pkg/palreg_crypto_wasm.js ] && [ -f scripts/build-wasm.sh ]; then
    echo "== building the WASM package (web/pkg)"
    bash scripts/build-wasm.sh
fi

echo "== building the server"
# The targets of `cargo test --workspace` (scripts/test.sh runs it just before): building
# `-p palreg-server` alone resolves the dependencies' features differently and rebuilt many
# of them (about 8 minutes of CI); this way the server binary the tests built is reused.
cargo build --workspace --all-targets --locked
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/palreg"
[ -x "$BIN" ] || die "no server binary at $BIN"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    mkdir -p test-artifacts
    cp "$tmp/server.log" test-artifacts/e2e-server.log 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
admin_password="e2e-admin-$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')"
url="https://127.0.0.1:$port"

echo "== starting palreg serve on $url (database in $tmp)"
PALREG_DATABASE_URL="sqlite://$tmp/palreg.db" \
PALREG_DATA_DIR="$tmp" \
PALREG_ADMIN_PASSWORD="$admin_password" \
PALREG_WEB_DIR="$ROOT/web" \
PALREG_LISTEN="127.0.0.1:$port" \
PALREG_LOGIN_RATE=1000 \
RUST_LOG="${RUST_LOG:-info}" \
    "$BIN" serve >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$tmp/server.log" >&2
        die "the server exited during start-up (log above)"
    fi
    if node -e '
        require("https").get(process.argv[1], { rejectUnauthorized: false }, (r) => process.exit(r.statusCode === 200 ? 0 : 1))
            .on("error", () => process.exit(1));' "$url/healthz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ -n "$ready" ] || { cat "$tmp/server.log" >&2; die "the server did not answer /healthz within 20 s"; }

rm -rf test-artifacts/screenshots
mkdir -p test-artifacts/screenshots

echo "== end-to-end tests"
if [ $# -gt 0 ]; then tests=("$@"); else tests=(tests/e2e/*.test.mjs); fi
PALREG_E2E_URL="$url" \
PALREG_E2E_ADMIN_PASSWORD="$admin_password" \
PALREG_E2E_CHROMIUM="$CHROMIUM" \
    node --test --test-concurrency="${PALREG_E2E_JOBS:-2}" "${tests[@]}"
echo "== end-to-end tests passed; screenshots in test-artifacts/screenshots/"
