#!/usr/bin/env bash
# Make .venv (if it is not there yet) and install tasker_aio into it, editable.
#
#   bash scripts/venv.sh            # the package alone
#   bash scripts/venv.sh test,web   # with extras
#
# It works where a plain `pip install` does not: on Debian and Ubuntu, whose system
# Python refuses to install packages globally (PEP 668, "externally-managed-environment")
# and may lack ensurepip (the python3-venv package). Then the virtualenv is made without
# pip, and pip is put into it by the system's pip (`pip --python`), or fetched from PyPI.
# Set PYTHON to use another interpreter than python3.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
extras=${1:-}
target="."
[ -n "$extras" ] && target=".[$extras]"

if [ ! -x .venv/bin/python ]; then
    echo "==> making .venv with $("$python" --version)"
    if ! "$python" -m venv .venv 2>/dev/null; then
        rm -rf .venv  # no ensurepip: make it without pip
        "$python" -m venv --without-pip .venv
    fi
fi

if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    if "$python" -m pip --version >/dev/null 2>&1 \
        && "$python" -m pip --python .venv/bin/python install --quiet pip 2>/dev/null; then
        : # the system's pip put pip into .venv
    else
        echo "==> fetching pip from PyPI into .venv"
        .venv/bin/python - <<'PY'
import json, pathlib, sys, tempfile, urllib.parse, urllib.request

index = "https://pypi.org/pypi/pip/json"
release = json.load(urllib.request.urlopen(index, timeout=60))
wheel = next(f for f in release["urls"] if f["filename"].endswith(".whl"))
path = pathlib.Path(tempfile.mkdtemp()) / wheel["filename"]
url = urllib.parse.urljoin(index, wheel["url"])  # a mirror may answer with a relative one
path.write_bytes(urllib.request.urlopen(url, timeout=120).read())
sys.path.insert(0, str(path))  # pip runs from its own wheel to install itself
from pip._internal.cli.main import main

sys.exit(main(["install", "--quiet", str(path)]))
PY
    fi
fi
# A recent pip: dependency groups (pip install --group) need pip >= 25.1.
.venv/bin/python -m pip install --quiet --upgrade pip

echo "==> installing tasker_aio${extras:+[$extras]} into .venv"
.venv/bin/python -m pip install --quiet -e "$target"
echo "==> ready: .venv/bin/python"
