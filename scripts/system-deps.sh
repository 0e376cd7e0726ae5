#!/usr/bin/env bash
# Installs the Debian packages the project needs beyond Python: Chromium and its driver for
# the browser tests (no test tool downloads its own), a CJK font (Chinese pages would
# otherwise render as empty boxes in screenshots), and nginx, the production profile's
# front (scripts/production.sh; the cluster tests start their own, never the system's
# service). Does nothing when they are there.
set -euo pipefail
packages=(chromium chromium-driver fonts-noto-cjk nginx)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "The project needs these Debian packages: ${missing[*]}" >&2
  echo "Install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} (Debian packages)..."
"${sudo[@]}" apt-get update -qq
# the nginx package would start the system's nginx on port 80: we only want its binary
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
