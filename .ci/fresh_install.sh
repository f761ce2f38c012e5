#!/usr/bin/env bash
# The README's first command, as a newcomer runs it: a fresh virtual environment, torch
# 2.13.0 first, then the package WITHOUT extras (so a module the package imports but does
# not declare fails here, as it would for a user); then `--help`, `models` and one
# prediction with the built-in model. Usage: .ci/fresh_install.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-$(mktemp -d)/venv}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check .
cli="$venv/bin/unilandmark"
"$cli" --help >/dev/null
"$cli" models >/dev/null
work="$(mktemp -d)"
# one image: a real cephalogram where the shared data is beside the checkout, else a phantom
image="../shared/data/isbi2015/RawImage/Test1Data/151.jpg"
scope=()
if [ ! -f "$image" ]; then
    "$cli" datasets make-synthetic --out "$work/phantoms" --domains head --train 0 --val 0 --test 1 >/dev/null
    image="$(find "$work/phantoms" -name '*.png' | head -1)"
    scope=(--keep-going)  # a phantom is out of scope for the built-in head model (exit 2)
fi
"$cli" predict "$image" --spacing 0.1 --out "$work/one.csv" "${scope[@]}" >/dev/null
test "$(wc -l < "$work/one.csv")" -ge 20   # header + 19 landmarks
echo "fresh install: --help, models and a prediction of $(basename "$image") work without extras"
