#!/usr/bin/env bash
# Leaves what the loopback VIM's blocklist needs installed (`vnfm up --vim loopback`, `vnfm
# conductor --vim loopback`, tests/tests/loopback.rs): `ipset`, whose hash:ip set holds the
# blocked addresses, and `iptables` (nf_tables backend, Debian 12's default), whose rule drops
# what arrives on `lo` for them. Nothing is started or changed here; a conductor makes its set
# and rule at start.
#
# - both already there: nothing to do (no network).
# - otherwise, as root with apt-get: installs Debian's `ipset` and `iptables` packages.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'install-loopback-vim: %s\n' "$*" >&2; }

missing=()
for tool in ipset iptables; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "error: ${missing[*]} missing and cannot be installed without root and apt-get (apt-get install ${missing[*]})"
  exit 1
fi
say "installing Debian's ${missing[*]}"
ops/apt-install-no-services.sh "${missing[@]}"
