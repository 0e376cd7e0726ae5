#!/usr/bin/env bash
# Trains models/current.tar.gz when the training data, domain, config or custom NLU
# components changed since the last training. (`rasa train --dry-run` misses domain
# changes such as the session config; Rasa's own cache then retrains only the
# components whose inputs changed.)
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false
fingerprint=$(bash scripts/fingerprint.sh)
stamp=models/current.fingerprint
if [ -f models/current.tar.gz ] && [ "$(cat "$stamp" 2>/dev/null)" = "$fingerprint" ]; then
  echo "Model is up to date (models/current.tar.gz)."
  exit 0
fi
echo "Training the model (a few minutes on two cores the first time)..."
.venv/bin/rasa train --fixed-model-name current --quiet
echo "$fingerprint" > "$stamp"
