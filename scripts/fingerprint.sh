#!/usr/bin/env bash
# Prints the fingerprint of everything a trained model is made from: config, domain,
# training data and the custom NLU and policy code. A model is current when it was
# trained from the same fingerprint (models/current.fingerprint). Run in a project root.
set -euo pipefail
find config.yml domain.yml data bot/nlu bot/text.py bot/handoff/policy.py bot/handoff/names.py -type f \( -name '*.yml' -o -name '*.txt' -o -name '*.py' \) \
  | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
