#!/usr/bin/env bash
# Installs everything, loads the demo data, trains if needed, and runs the bot: the action
# server, the Rasa server (REST and socket.io channels; its HTTP API behind a token), the
# agents' console and the website with the chat widget. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export RASA_TELEMETRY_ENABLED=false
RASA_PORT=${RASA_PORT:-5005}
ACTIONS_PORT=${ACTIONS_PORT:-5055}
RASA_INTERFACE=${RASA_INTERFACE:-127.0.0.1}
CONSOLE_PORT=${CONSOLE_PORT:-5080}
WEBSITE_PORT=${WEBSITE_PORT:-5090}
# where the visitor's browser reaches the Rasa server's socket.io (a public address when
# the website is served to other machines)
RASA_PUBLIC_URL=${RASA_PUBLIC_URL:-http://127.0.0.1:${RASA_PORT}}

.venv/bin/python -m bot db init --demo
bash scripts/train.sh

mkdir -p var
sed "s#127.0.0.1:5055#127.0.0.1:${ACTIONS_PORT}#" endpoints.yml > var/endpoints.yml
# the console speaks to customers through Rasa's HTTP API: a token of this installation
# protects it (set RASA_TOKEN to choose one)
if [[ -z "${RASA_TOKEN:-}" ]]; then
  [[ -s var/rasa-token ]] || (umask 077 && .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > var/rasa-token)
  RASA_TOKEN=$(cat var/rasa-token)
fi
export RASA_TOKEN RASA_URL="http://127.0.0.1:${RASA_PORT}"
# the website and the WeChat channel (in the Rasa server) vouch for a known customer with a
# token signed by this key, which the action server checks (bot/known_customer.py; set
# CUSTOMER_TOKEN_SECRET to choose it)
if [[ -z "${CUSTOMER_TOKEN_SECRET:-}" ]]; then
  [[ -s var/customer-token-secret ]] || (umask 077 && .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > var/customer-token-secret)
  CUSTOMER_TOKEN_SECRET=$(cat var/customer-token-secret)
fi
export CUSTOMER_TOKEN_SECRET
# the first run creates the console's administrator and prints its password once
.venv/bin/python -m bot console ensure-admin admin

pids=()
stop() {
  trap - INT TERM EXIT
  echo "Stopping the bot..."
  # background jobs of a script ignore SIGINT; TERM stops Sanic cleanly
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "Stopped."
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# the action server answers only the Rasa server, on this machine; Sanic's default 5 s
# keep-alive drops action calls a busy Rasa server opened but could not yet send (bench/RESULTS.md)
SANIC_HOST=127.0.0.1 SANIC_KEEP_ALIVE_TIMEOUT="${SANIC_KEEP_ALIVE_TIMEOUT:-120}" .venv/bin/rasa run actions --port "$ACTIONS_PORT" > var/action-server.log 2>&1 &
pids+=($!)
.venv/bin/rasa run --interface "$RASA_INTERFACE" --port "$RASA_PORT" \
  --model models/current.tar.gz --endpoints var/endpoints.yml --credentials credentials.yml \
  --enable-api --auth-token "$RASA_TOKEN" \
  > var/rasa-server.log 2>&1 &
pids+=($!)
.venv/bin/python -m bot console serve --port "$CONSOLE_PORT" > var/console.log 2>&1 &
pids+=($!)
RASA_PUBLIC_URL="$RASA_PUBLIC_URL" .venv/bin/python -m bot website serve --port "$WEBSITE_PORT" > var/website.log 2>&1 &
pids+=($!)
# tickets are forwarded to the company's work-order system only when it is configured
if [[ -n "${HELPDESK_URL:-}" ]]; then
  .venv/bin/python -m bot outbox run > var/outbox.log 2>&1 &
  pids+=($!)
fi

echo "Starting the action server, the Rasa server, the console and the website (logs in var/)..."
until .venv/bin/python -m bot wait --timeout 2 "http://127.0.0.1:${ACTIONS_PORT}/health" "http://127.0.0.1:${RASA_PORT}/" \
    "http://127.0.0.1:${CONSOLE_PORT}/login" "http://127.0.0.1:${WEBSITE_PORT}/" 2>/dev/null; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "A server failed to start; see var/*.log" >&2; exit 1; }
  done
done

cat <<MSG

The bot is ready.
  Chat on the website: http://127.0.0.1:${WEBSITE_PORT}/  (the widget at the bottom right; sign in to
    网上营业厅 with 3201000001 张伟 and the bot knows the account)
  Talk to it over HTTP:
    curl -s -XPOST http://127.0.0.1:${RASA_PORT}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
      -d '{"sender": "demo", "message": "帮我查下3201000001上个月电费"}'
  Or chat in a terminal:
    .venv/bin/python -m bot chat --url http://127.0.0.1:${RASA_PORT}
  Demo accounts: 3201000001 张伟 (phone 13800000001), 3201000002 李娜, 3201000003 王强.
  Agents' console: http://127.0.0.1:${CONSOLE_PORT}/  (user admin; its password was printed on the
    first run; more staff: .venv/bin/python -m bot console create-user NAME --role agent)
Press Ctrl-C to stop.
MSG

# stay up while the servers run; if one dies, stop the others
wait -n "${pids[@]}"
echo "A server stopped unexpectedly; see var/*.log" >&2
exit 1
