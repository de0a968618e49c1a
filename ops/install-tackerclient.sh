#!/usr/bin/env bash
# Leaves python-tackerclient 1.14.0 (the last with the legacy VNFM commands) at
# ops/.venv-tacker/bin/tacker, for the tests that drive the API with Tacker's own client,
# unmodified. Needs python3 with venv and pip; installs from PyPI once, then does nothing.
set -euo pipefail

readonly VERSION=1.14.0

cd "$(dirname "$0")/.."
venv=$PWD/ops/.venv-tacker
if [[ -x $venv/bin/tacker ]] && [[ $("$venv/bin/tacker" --version 2>&1 | tail -1) == "$VERSION" ]]; then
  exit 0
fi
printf 'install-tackerclient: installing python-tackerclient %s into %s\n' "$VERSION" "$venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "python-tackerclient==$VERSION"
