#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at PALREG_TEST_PG_URL (default
# postgres://postgres@127.0.0.1:5432/postgres, trust authentication) for the test suite:
# uses the running one, or starts the installed cluster, or installs PostgreSQL from Debian's
# packages (as root) and starts it with trust authentication on 127.0.0.1 for the tests.
set -euo pipefail

url="${PALREG_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -d "$url" >/dev/null 2>&1
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

wait_for_it() {
    for _ in $(seq 1 30); do
        answers && return 0
        sleep 1
    done
    return 1
}

if answers; then
    exit 0
fi

echo "PostgreSQL does not answer at $url; starting it…" >&2
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: PostgreSQL is not installed. Install it (Debian: apt-get install postgresql)" >&2
        echo "       or point PALREG_TEST_PG_URL at a server with trust authentication." >&2
        exit 1
    fi
    echo "Installing PostgreSQL from Debian's packages…" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba="/etc/postgresql/$version/main/pg_hba.conf"
# Tests connect as postgres over TCP without a password: trust on loopback only.
if [ -w "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
if ! wait_for_it; then
    echo "error: PostgreSQL did not start; see /var/log/postgresql/" >&2
    exit 1
fi
echo "PostgreSQL $version is running." >&2
