#!/usr/bin/env bash
# Lint, then run the whole test suite: the core and every plugin, then the core alone.
#
#   bash scripts/test.sh [PYTEST ARGS...]
#
# On a fresh Debian machine (Python >= 3.10, Node 20, root or sudo) it first installs what is
# missing. The environments are rebuilt every run because entry points are read at install time.
# Exit status: pytest's (non-zero if either run fails, including "no tests collected"), or 1
# when the suites pass but lint (ruff check, ruff format --check, mypy --strict) failed.
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

lint=0
"$HATCH" run lint || lint=1

full=0 core=0
run_suite test "$@" || full=$?
run_suite core "$@" || core=$?
if [ "$lint" -ne 0 ]; then
  echo "lint failed: see ruff's or mypy's output above (scripts/hatch run lint; ruff format fixes layout)" >&2
fi
exit $((full != 0 ? full : core != 0 ? core : lint))
