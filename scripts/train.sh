#!/usr/bin/env bash
# Trains models/current.tar.gz only when the training data, domain or config changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false
if [ -f models/current.tar.gz ] && .venv/bin/rasa train --dry-run --fixed-model-name current >/dev/null 2>&1; then
  echo "Model is up to date (models/current.tar.gz)."
else
  echo "Training the model (a few minutes on two cores)..."
  .venv/bin/rasa train --fixed-model-name current --quiet
fi
