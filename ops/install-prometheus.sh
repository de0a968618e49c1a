#!/usr/bin/env bash
# Leaves Debian's Prometheus and Alertmanager (the `prometheus` and `prometheus-alertmanager`
# packages: /usr/bin/prometheus, /usr/bin/prometheus-alertmanager) installed for the end-to-end
# test of alarm-driven scaling (tests/tests/alarms_prometheus.rs), which runs its own of each
# on loopback over temporary storage. Nothing is started or configured system-wide.
#
# - both binaries already there: nothing to do (no network).
# - otherwise, as root with apt-get: installs both packages with service start-up blocked
#   (policy-rc.d), so that the packages' own services never run.
set -euo pipefail

say() { printf 'install-prometheus: %s\n' "$*" >&2; }

if command -v prometheus >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "error: Prometheus or Alertmanager is missing and cannot be installed without root and apt-get (apt-get install prometheus prometheus-alertmanager)"
  exit 1
fi
say "installing Debian's prometheus and prometheus-alertmanager packages"
"$(dirname "$0")/apt-install-no-services.sh" --no-install-recommends prometheus prometheus-alertmanager
say "$(prometheus --version 2>&1 | head -1); $(prometheus-alertmanager --version 2>&1 | head -1)"
