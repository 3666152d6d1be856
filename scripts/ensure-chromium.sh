#!/usr/bin/env bash
# Browser tests drive Debian's Chromium. Install it when missing and we are
# root; otherwise say exactly what to install.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium package (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "error: the browser tests need Chromium at $CHROMIUM." >&2
echo "       Install it with: sudo apt-get install chromium   (Debian/Ubuntu)" >&2
echo "       or point CHROMIUM_PATH at a Chromium binary." >&2
exit 1
