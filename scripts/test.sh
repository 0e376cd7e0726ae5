#!/usr/bin/env bash
# Installs everything, trains the model if needed, lints, and runs every test.
# Arguments go to pytest (e.g. scripts/test.sh -k bill).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh
export RASA_TELEMETRY_ENABLED=false
.venv/bin/ruff check .
bash scripts/train.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit "$status"
