#!/usr/bin/env bash
# Makes sure the admin dashboard's browser test can run: Debian's Chromium at
# /usr/bin/chromium and tests/browser's pinned playwright-core in node_modules.
# Idempotent and quick when both are already there (no network then).
#
#   bash scripts/ensure-chromium.sh
#
# Fails (exit 1) when either cannot be had: the browser test never skips.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "ensure-chromium: $*" >&2; }

if [[ -x /usr/bin/chromium ]]; then
  log "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -n1 || echo 'version unknown'))"
else
  command -v apt-get >/dev/null || { log "/usr/bin/chromium is missing and apt-get is not available; install Chromium"; exit 1; }
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { log "need root (or sudo) to install chromium"; exit 1; }
    sudo="sudo"
  fi
  log "installing chromium with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  [[ -x /usr/bin/chromium ]] || { log "apt-get finished but /usr/bin/chromium is still missing"; exit 1; }
fi

command -v node >/dev/null || { log "node is not installed (need Node.js >= 20)"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

cd "$root/tests/browser"
want="$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' package.json | head -n1)"
have="$(node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [[ "$have" == "$want" ]]; then
  log "playwright-core@$have already installed"
else
  log "installing playwright-core@$want (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
