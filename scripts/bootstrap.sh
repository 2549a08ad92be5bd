#!/usr/bin/env bash
# Create .venv/ in the repo root when it is missing, and (re)install requirements when they changed.
# Usage: scripts/bootstrap.sh runtime|dev
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-runtime}"
venv="$root/.venv"
python="${PYTHON:-python3}"
case "$kind" in
  runtime) reqs="$root/requirements.txt" ;;
  dev) reqs="$root/requirements-dev.txt" ;;
  *) echo "usage: $0 runtime|dev" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv ..." >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$kind"
want="$(cat "$root/requirements.txt" "$reqs" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  torch_pin="$(grep -E '^torch==' "$root/requirements.txt")"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_pin"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
  echo "$want" > "$stamp"
fi
