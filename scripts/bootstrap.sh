#!/usr/bin/env bash
# Create .venv/ in the repo root when it is missing, and (re)install requirements when they changed.
# Usage: scripts/bootstrap.sh runtime|dev
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-runtime}"
venv="$root/.venv"
python="${PYTHON:-python3}"
case "$kind" in
  runtime) reqs="$root/requirements.txt"; no_deps=("$root/requirements-no-deps.txt") ;;
  dev) reqs="$root/requirements-dev.txt"; no_deps=("$root/requirements-no-deps.txt" "$root/requirements-dev-no-deps.txt") ;;
  *) echo "usage: $0 runtime|dev" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv ..." >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$kind"
want="$(cat "$root/requirements.txt" "${no_deps[@]}" "$reqs" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  torch_pin="$(grep -E '^torch==' "$root/requirements.txt")"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_pin"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
  # Packages whose declared dependencies must not come along (spandrel would pull a CUDA torchvision and torch).
  for file in "${no_deps[@]}"; do
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$file"
  done
  echo "$want" > "$stamp"
fi

# The editor's canvas library (package.json / package-lock.json), served from node_modules/ without a build step.
npm_stamp="$root/node_modules/.installed-lock"
npm_want="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
  if command -v npm >/dev/null 2>&1; then
    if (cd "$root" && npm ci --no-audit --no-fund --loglevel=error); then
      echo "$npm_want" > "$npm_stamp"
    else
      echo "warning: npm ci failed, so the browser editor is not installed (the API works); run this again" >&2
    fi
  else
    echo "warning: npm not found; the browser editor needs Node.js 20+ and npm (then run this again)" >&2
  fi
fi

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
if [ "$kind" = dev ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests ..." >&2
    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; } \
      || echo "warning: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "warning: /usr/bin/chromium is missing, so the browser tests will be skipped;" \
      "install it with: sudo apt-get install -y --no-install-recommends chromium" >&2
  fi
fi
