#!/usr/bin/env bash
# Leaves OpenStack Keystone (Debian's `keystone` package: keystone-manage, and the WSGI
# application keystone-wsgi-public run by uwsgi) installed for the tests of the gateway's
# Keystone authentication. Nothing is started or configured system-wide: each test runs its
# own Keystone on a free loopback port over a temporary sqlite database
# (tests/src/keystone.rs).
#
# - keystone-manage and uwsgi's python3 plugin already there: nothing to do (no network).
# - otherwise, as root with apt-get: installs `keystone` with service start-up blocked
#   (policy-rc.d), so that the package's own uwsgi service never runs.
set -euo pipefail

say() { printf 'install-keystone: %s\n' "$*" >&2; }

if command -v keystone-manage >/dev/null 2>&1 && command -v uwsgi >/dev/null 2>&1 \
  && [[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "error: Keystone is missing and cannot be installed without root and apt-get (apt-get install keystone)"
  exit 1
fi
say "installing Debian's keystone package (a few minutes)"
"$(dirname "$0")/apt-install-no-services.sh" keystone
say "$(keystone-manage --version 2>/dev/null || echo installed)"
