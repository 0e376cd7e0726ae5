#!/usr/bin/env bash
# Refreshes the console's vendored JavaScript (bot/console/static/vendor/) from npm.
# The console loads nothing from another host: change the pinned version here, run this
# script, and commit the copied files together with the new version in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
CHART_JS_VERSION=4.4.6
vendor=bot/console/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@${CHART_JS_VERSION}" >/dev/null && tar -xzf "chart.js-${CHART_JS_VERSION}.tgz")
cp "$work/package/dist/chart.umd.js" "$vendor/chart.umd.js"
cp "$work/package/LICENSE.md" "$vendor/chart.js.LICENSE.md"
echo "chart.js ${CHART_JS_VERSION} copied to $vendor"
