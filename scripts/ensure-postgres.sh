#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests, and prints the URL to use.
#
# - SUBSYNC_TEST_POSTGRES_URL set: use it as is (must answer, else fail).
# - Else 127.0.0.1:5432 answering: use postgres://postgres@127.0.0.1:5432/test.
# - Else start the local cluster if one is installed, or install Debian's postgresql,
#   start it, and give the postgres role a password for TCP logins.
# Fails (exit 1) when no server can be had: the suite never skips PostgreSQL.
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }
answers() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# The TLS tests (sslmode=require / verify-full) need the server to offer TLS. Debian's cluster
# ships a self-signed "snakeoil" certificate; turn ssl on with it when it is off, and fail
# (never skip) when it cannot be turned on.
ensure_tls() {
  local url="$1"
  [[ "$(psql "$url" -Atqc 'SHOW ssl' 2>/dev/null)" == "on" ]] && return 0
  log "enabling ssl on the test server (Debian's snakeoil certificate)"
  if [[ -r /etc/ssl/certs/ssl-cert-snakeoil.pem ]]; then
    psql "$url" -qc "ALTER SYSTEM SET ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'" >&2 || true
    psql "$url" -qc "ALTER SYSTEM SET ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'" >&2 || true
  fi
  psql "$url" -qc "ALTER SYSTEM SET ssl = on" >&2 || true
  psql "$url" -qc "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
  sleep 1
  [[ "$(psql "$url" -Atqc 'SHOW ssl' 2>/dev/null)" == "on" ]] || { log "ssl is off on the test server and could not be turned on"; exit 1; }
}

finish() { ensure_tls "$1"; echo "$1"; exit 0; }

if [[ -n "${SUBSYNC_TEST_POSTGRES_URL:-}" ]]; then
  command -v psql >/dev/null || { log "psql not found; install postgresql-client"; exit 1; }
  answers "$SUBSYNC_TEST_POSTGRES_URL" || { log "SUBSYNC_TEST_POSTGRES_URL does not answer"; exit 1; }
  finish "$SUBSYNC_TEST_POSTGRES_URL"
fi

trust_url="postgres://postgres@127.0.0.1:5432/test"
pw_url="postgres://postgres:postgres@127.0.0.1:5432/test"

try_urls() {
  for url in "$trust_url" "$pw_url"; do
    if answers "$url"; then echo "$url"; return 0; fi
  done
  return 1
}

if command -v psql >/dev/null && url="$(try_urls)"; then finish "$url"; fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  log "no PostgreSQL installed; installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2 || { log "apt-get install postgresql failed"; exit 1; }
fi

version="$(ls /etc/postgresql | sort -V | tail -n1)"
log "starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>&1 || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }

if ! try_urls >/dev/null; then
  # A fresh Debian cluster wants a password over TCP: set one and create the test database.
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2 || true
  su postgres -c "psql -qc 'CREATE DATABASE test'" >&2 2>/dev/null || true
fi
url="$(try_urls)" || { log "PostgreSQL is up but neither $trust_url nor the password URL works"; exit 1; }
finish "$url"
