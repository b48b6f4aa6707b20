#!/usr/bin/env bash
# Run the whole test suite: the core and every plugin, then the core alone with no plugins.
#
#   bash scripts/test.sh [PYTEST ARGS...]
#
# On a fresh Debian machine (Python >= 3.10, Node 20, root or sudo) it first installs what is
# missing. The environments are rebuilt every run because entry points are read at install time.
# Exit status: pytest's (non-zero if either run fails, including "no tests collected").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

# ---- What the tests need from outside Python: add to these lists, nothing else to change. ----
# Debian packages, e.g. etcd-server postgresql chromium.
APT_PACKAGES=(etcd-server postgresql chromium)
# npm packages, installed into build/node (NODE_PATH points there): tests/node-packages.txt.
mapfile -t NPM_PACKAGES < <(grep -v '^#' tests/node-packages.txt | grep .)
# -----------------------------------------------------------------------------------------------

[ "${#APT_PACKAGES[@]}" -eq 0 ] || ensure_apt_packages "${APT_PACKAGES[@]}"
[ "${#NPM_PACKAGES[@]}" -eq 0 ] || ensure_npm_packages "$PWD/build/node" "${NPM_PACKAGES[@]}"
ensure_hatch

run_suite() {
  local env=$1 status=0
  shift
  "$HATCH" env remove "$env"
  "$HATCH" run "$env:test" "$@" || status=$?
  if [ "$status" -eq 5 ]; then
    echo "$env: pytest collected no tests" >&2
  fi
  return "$status"
}

full=0 core=0
run_suite test "$@" || full=$?
run_suite core "$@" || core=$?
exit $((full != 0 ? full : core))
