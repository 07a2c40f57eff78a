#!/usr/bin/env bash
# Installs the official Standard Webhooks Python library, which every notification test
# verifies subsync's notifications with (receiver.py). Idempotent: returns at once when the
# pinned version is installed.
#
#   bash tests/standard-webhooks/install.sh
#
# Into the interpreter `python3` runs (set PYTHON=/path/to/python to choose another).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
want="$(sed -n 's/^standardwebhooks==\([^[:space:]]*\).*/\1/p' "$here/requirements.txt" | head -n1)"

command -v "$python" >/dev/null || { echo "install.sh: $python is not installed" >&2; exit 1; }
have="$("$python" -c 'import importlib.metadata as m; print(m.version("standardwebhooks"))' 2>/dev/null || true)"
if [[ "$have" == "$want" ]]; then
  echo "install.sh: PyPI standardwebhooks==$have already installed"
else
  echo "install.sh: installing PyPI standardwebhooks==$want"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
"$python" -c 'from standardwebhooks.webhooks import Webhook' \
  || { echo "install.sh: standardwebhooks does not import" >&2; exit 1; }
