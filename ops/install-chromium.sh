#!/usr/bin/env bash
# Leaves Debian's Chromium (/usr/bin/chromium) installed for the status board's browser test
# (tests/tests/board.rs), which starts it headless on loopback with a fresh profile and drives
# it through the DevTools protocol. Nothing is started here.
#
# - chromium already there: nothing to do (no network).
# - otherwise, as root with apt-get: installs Debian's `chromium` package.
set -euo pipefail

say() { printf 'install-chromium: %s\n' "$*" >&2; }

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "error: Chromium is missing and cannot be installed without root and apt-get (apt-get install chromium)"
  exit 1
fi
say "installing Debian's chromium package (a few minutes)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
say "$(chromium --version 2>/dev/null || echo installed)"
