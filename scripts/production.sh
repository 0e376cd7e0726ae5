#!/usr/bin/env bash
# The production profile on this machine (docs/production.md): two Rasa servers and two
# action servers behind nginx, PostgreSQL as the tracker store and the product's database,
# Redis for the conversation locks and the socket.io fan-out, RabbitMQ as the event broker
# with the analytics consumer, the recovery worker, the console and the website. The
# services' addresses come from the environment (defaults: the machine's own on
# loopback); secrets too, or are made once in var/. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-deps.sh  # nginx (Debian's package)
export RASA_TELEMETRY_ENABLED=false
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/bot}
bash scripts/train.sh

mkdir -p var
secret() {  # the value of $1 from the environment, else one made once for this machine
  local name=$1 file=var/$2
  if [[ -z "${!name:-}" ]]; then
    [[ -s $file ]] || (umask 077 && .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > "$file")
    export "$name=$(cat "$file")"
  fi
}
secret RASA_TOKEN rasa-token
secret CUSTOMER_TOKEN_SECRET customer-token-secret

# the schema (the cluster runs the migrations again, harmlessly), the demo customers and
# the console's administrator, whose password the first run prints once
.venv/bin/python -m bot db init --demo
.venv/bin/python -m bot console ensure-admin admin
exec .venv/bin/python -m bot cluster up
