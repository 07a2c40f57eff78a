#!/usr/bin/env bash
# The one test command (README, CI): makes sure every service the tests need is here,
# then runs the whole workspace's tests. Missing services make it fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSYNC_TEST_POSTGRES_URL="$(bash scripts/ensure-postgres.sh)"
export SUBSYNC_TEST_POSTGRES_URL
echo "test: PostgreSQL at ${SUBSYNC_TEST_POSTGRES_URL%%@*}@…"

# Style and lints first: they fail in a minute, before the long test build.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

bash tests/official-stripe/install.sh
bash tests/prometheus/install.sh
bash tests/standard-webhooks/install.sh
bash scripts/ensure-chromium.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
