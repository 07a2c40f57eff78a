#!/usr/bin/env bash
# Installs the Prometheus project's official Python client, whose text-format parser
# tests/system.rs runs over a live `/metrics` (through check.py). Idempotent: when the
# pinned version is already installed it only checks and returns.
#
#   bash tests/prometheus/install.sh
#
# Installs into the interpreter `python3` runs (set PYTHON=/path/to/python to choose
# another; the test uses the same variable).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
python="${PYTHON:-python3}"

want="$(sed -n 's/^prometheus-client==\([^[:space:]]*\).*/\1/p' requirements.txt | head -n1)"
command -v "$python" >/dev/null || { echo "install.sh: $python is not installed" >&2; exit 1; }

have="$("$python" -c 'from importlib.metadata import version; print(version("prometheus-client"))' 2>/dev/null || true)"
if [[ "$have" == "$want" ]]; then
  echo "install.sh: PyPI prometheus-client==$have already installed"
else
  echo "install.sh: installing PyPI prometheus-client==$want"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
fi
