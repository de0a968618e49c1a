#!/usr/bin/env bash
# Installs Debian packages (the arguments, with apt-get's options first if any) with service
# start-up blocked by a temporary policy-rc.d ("action not allowed"), so that no package starts
# a service of its own: the tests run their own instances, on loopback, when they need them.
# The machine's own policy-rc.d, if any, is put back afterwards. Needs root and apt-get; the
# install-*.sh scripts call it once they know the packages are missing.
set -euo pipefail

policy=/usr/sbin/policy-rc.d
restore_policy=
if [[ -e $policy ]]; then
  restore_policy=$(mktemp)
  cp -p "$policy" "$restore_policy"
fi
cleanup() {
  if [[ -n $restore_policy ]]; then mv "$restore_policy" "$policy"; else rm -f "$policy"; fi
}
trap cleanup EXIT
# 101: "action not allowed", so that the packages start no service of their own.
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$@" >/dev/null
