#!/usr/bin/env bash
# Set up .venv/ with the test tools if needed, lint, then run the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh" dev
cd "$root"
export HF_HUB_OFFLINE=1
"$root/.venv/bin/ruff" check .
exec "$root/.venv/bin/python" -m pytest "$@"
