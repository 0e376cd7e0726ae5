#!/usr/bin/env bash
# Creates .venv with Python 3.10 and installs the pinned dependencies (again only when the lock changed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
find_python310

if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "Creating .venv with $PYTHON310"
  rm -rf .venv
  "$PYTHON310" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing pinned dependencies (requirements.lock)..."
  .venv/bin/python -m pip install --quiet --upgrade "pip==24.2" "setuptools==70.3.0" "wheel==0.44.0"
  .venv/bin/python -m pip install --quiet --no-deps -r requirements.lock
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
