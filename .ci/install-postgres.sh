#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl) exist, so the test
# fixtures in tests/servers.py can start a throwaway cluster.
#
# Idempotent: does nothing when the binaries are already on PATH or in
# /usr/lib/postgresql/*/bin (Debian's layout, which is not on PATH).
# Otherwise installs Debian's "postgresql" package; needs root (or sudo).
# The package's own default cluster is left alone; the tests never use it.
set -euo pipefail

has_server_binaries() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    local bindir
    for bindir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$bindir/initdb" && -x "$bindir/pg_ctl" ]]; then
            return 0
        fi
    done
    return 1
}

if has_server_binaries; then
    echo "install-postgres: PostgreSQL server binaries already present; nothing to do"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-postgres: need root (or sudo) to install PostgreSQL" >&2
    exit 1
fi

echo "install-postgres: installing the Debian postgresql package"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends postgresql

if ! has_server_binaries; then
    echo "install-postgres: installed, but initdb/pg_ctl still not found" >&2
    exit 1
fi
echo "install-postgres: done"
