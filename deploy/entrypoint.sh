#!/bin/sh
# The bot image's entry point (deploy/Dockerfile): one image, one role per container. The
# commands are the loopback cluster's (bot/cluster/launcher.py) with container addresses:
# every part listens on all of the container's interfaces (the action servers on the one
# SANIC_HOST names), on the port the image documents.
#
#   rasa-server    rasa run --enable-api --auth-token $RASA_TOKEN (port 5005)
#   action-server  rasa run actions (port 5055)
#   migrate        the databases made if missing, then python -m bot db init
#   analytics      python -m bot analytics consume
#   console        python -m bot console serve (port 5080)
#   website        python -m bot website serve (port 5090)
#   anything else  run as it is (rasa train, python -m bot ..., sh)
set -eu

# secrets are never defaults: stop when one is empty or still the template's placeholder
require() {
  for name in "$@"; do
    eval "value=\${$name:-}"
    case "$value" in
      "" | CHANGE-ME*)
        echo "Set $name in the environment (a secret; never a default): deploy/README.md" >&2
        exit 2
        ;;
    esac
  done
}

role=${1:-rasa-server}
[ $# -gt 0 ] && shift

case "$role" in
  rasa-server)
    require RASA_TOKEN CUSTOMER_TOKEN_SECRET
    # the token is read from the environment here, not written into the pod or container spec
    exec rasa run --interface 0.0.0.0 --port 5005 \
      --model "${RASA_MODEL:-/app/models/current.tar.gz}" \
      --endpoints "${RASA_ENDPOINTS:-/app/cluster/endpoints.yml}" \
      --credentials "${RASA_CREDENTIALS:-/app/cluster/credentials.yml}" \
      --enable-api --auth-token "$RASA_TOKEN" "$@"
    ;;
  action-server)
    require CUSTOMER_TOKEN_SECRET
    exec rasa run actions --port 5055 --actions actions "$@"
    ;;
  migrate)
    # as the loopback launcher does before start (bot/cluster/launcher.py): each PostgreSQL
    # database made if it is missing (CREATE_DATABASES=0 where the DBA makes them; db init
    # reads it too), then the product's migrations; DEMO_DATA=1 loads the demo accounts too
    if [ "${CREATE_DATABASES:-1}" = 1 ] && [ -n "${TRACKER_STORE_URL:-}" ]; then
      python -c 'import os; from bot.schema import ensure_database; ensure_database(os.environ["TRACKER_STORE_URL"])'
    fi
    if [ "${DEMO_DATA:-0}" = 1 ]; then
      exec python -m bot db init --demo "$@"
    fi
    exec python -m bot db init "$@"
    ;;
  analytics)
    exec python -m bot analytics consume "$@"
    ;;
  recovery)
    require RASA_TOKEN
    exec python -m bot recovery run "$@"
    ;;
  console)
    require RASA_TOKEN
    exec python -m bot console serve --host 0.0.0.0 --port 5080 "$@"
    ;;
  website)
    exec python -m bot website serve --host 0.0.0.0 --port 5090 "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
