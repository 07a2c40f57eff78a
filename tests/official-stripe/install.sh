#!/usr/bin/env bash
# Installs the official Stripe SDKs that crates/stripe/tests/official_sdks.rs
# cross-checks our webhook signing against. Idempotent: when the pinned versions
# are already installed it only checks and returns (well under a second).
#
#   bash tests/official-stripe/install.sh
#
# Node: `npm ci` from the committed package-lock.json into ./node_modules.
# Python: `pip install -r requirements.txt` into the interpreter `python3` runs
# (set PYTHON=/path/to/python to choose another).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
python="${PYTHON:-python3}"

want_npm="$(sed -n 's/.*"stripe": *"\([^"]*\)".*/\1/p' package.json | head -n1)"
want_py="$(sed -n 's/^stripe==\([^[:space:]]*\).*/\1/p' requirements.txt | head -n1)"

command -v node >/dev/null || { echo "install.sh: node is not installed (need Node.js >= 20)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install.sh: npm is not installed" >&2; exit 1; }
command -v "$python" >/dev/null || { echo "install.sh: $python is not installed" >&2; exit 1; }

have_npm="$(node -p "require('./node_modules/stripe/package.json').version" 2>/dev/null || true)"
if [[ "$have_npm" == "$want_npm" ]]; then
  echo "install.sh: npm stripe@$have_npm already installed"
else
  echo "install.sh: installing npm stripe@$want_npm"
  npm ci --no-audit --no-fund --loglevel=error
fi

have_py="$("$python" -c 'import stripe; print(stripe.VERSION)' 2>/dev/null || true)"
if [[ "$have_py" == "$want_py" ]]; then
  echo "install.sh: PyPI stripe==$have_py already installed"
else
  echo "install.sh: installing PyPI stripe==$want_py"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
fi
