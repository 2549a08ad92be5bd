#!/usr/bin/env bash
# Set up .venv/ if needed, then start Reelgraph (default: the server at http://127.0.0.1:8188).
# Any arguments go to main.py, e.g. ./start.sh run workflows/invert_crop_api.json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh" runtime
cd "$root"
exec "$root/.venv/bin/python" main.py "$@"
