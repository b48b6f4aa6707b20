#!/usr/bin/env bash
# Run the demo (`kite demo`: the first-kite/second-kite walk-through) in the hatch environment,
# installing hatch first when it is missing.
#
#   bash scripts/demo.sh [DEMO ARGS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

ensure_hatch
exec "$HATCH" run demo "$@"
