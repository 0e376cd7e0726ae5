#!/usr/bin/env bash
# Refreshes the website's vendored chat widget (bot/website/static/vendor/) from npm.
# The page loads nothing from another host, so rasa-webchat is installed here with
# `npm ci` from bot/website/package-lock.json (in a temporary directory: no node_modules
# in the project), patched (scripts/vendor_webchat.py says how and why), and copied.
# To move to another version: change it in bot/website/package.json, run
# `npm install --package-lock-only --ignore-scripts` in bot/website, run this script,
# check the website (tests/e2e/test_website.py), and commit the files together.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp bot/website/package.json bot/website/package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
.venv/bin/python scripts/vendor_webchat.py "$work/node_modules/rasa-webchat" bot/website/static/vendor
