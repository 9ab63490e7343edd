#!/usr/bin/env bash
# Create the project's virtualenv. On Debian/Ubuntu the stdlib `venv` module
# lives in a separate package (python3-venv); install it when it is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: $python is missing or older than 3.11 (ansible-core 2.19 needs >= 3.11)." >&2
  echo "       Run make with PYTHON=/path/to/python3.11+." >&2
  exit 1
fi

if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "Installing python${pyver}-venv (the venv module is packaged separately here)..."
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "python${pyver}-venv" || \
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
  else
    echo "error: '$python -m venv' failed and apt-get is not available; install the venv module." >&2
    exit 1
  fi
fi
