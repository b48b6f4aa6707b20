# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run): install what is missing.
# Targets a fresh Debian machine with Python >= 3.10 and Node; works as root or with sudo.

# Run a command as root (directly when we are root, else through sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_apt_packages PKG...: apt-get install the Debian packages that are not installed yet.
# `apt-get update` runs once, before the install, and only when something is missing.
ensure_apt_packages() {
  local missing=() package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# ensure_npm_packages PREFIX PKG...: npm install the packages missing from PREFIX/node_modules
# and point NODE_PATH there, so `node` started by the tests finds them.
ensure_npm_packages() {
  local prefix=$1 missing=() package name
  shift
  for package in "$@"; do
    name=${package%@*}  # without its version: kite.js@1.0 -> kite.js, but @scope/pkg stays
    [ -n "$name" ] || name=$package
    [ -d "$prefix/node_modules/$name" ] || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    # all of them in one call: `npm install --no-save` removes the packages a call does not name
    echo "installing npm packages into $prefix: $* (missing: ${missing[*]})" >&2
    npm install --no-save --no-audit --no-fund --prefix "$prefix" "$@"
  fi
  export NODE_PATH="$prefix/node_modules${NODE_PATH:+:$NODE_PATH}"
}

# ensure_hatch: set HATCH to a hatch command, installing hatch into its own virtualenv under
# ~/.cache when none is on PATH (Debian's system Python refuses a global `pip install`).
# Workspaces need hatch >= 1.16; an older hatch on PATH is passed over.
ensure_hatch() {
  local found version
  if found=$(command -v hatch); then
    version=$("$found" --version | sed 's/.* //')
    if [ "$(printf '%s\n' 1.16 "$version" | sort -V | head -n 1)" = 1.16 ]; then
      HATCH=$found
      return 0
    fi
    echo "hatch $version on PATH is older than 1.16; installing a newer one" >&2
  fi
  local tools="${XDG_CACHE_HOME:-$HOME/.cache}/kite-hatch"
  if [ ! -x "$tools/bin/hatch" ]; then
    python3 -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
      || { echo "Python >= 3.10 is needed as python3" >&2; return 1; }
    python3 -c 'import ensurepip' 2>/dev/null || ensure_apt_packages python3-venv
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet hatch
  fi
  HATCH="$tools/bin/hatch"
}
