#!/usr/bin/env bash
# Installs the Python CUDA clients the tests run (numba-cuda, cuda-core/cuda-bindings, CuPy and
# numba-cuda's test dependencies), pinned in tests/python/requirements.txt, into the venv .deps/py
# (no GPU needed; wheels from PyPI). Idempotent: does nothing when the venv was built from the
# current requirements file (stamp .deps/py/.installed-<sha256 of the file>).
# Prints the venv's python on standard output.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/tests/python/requirements.txt"
venv="$root/.deps/py"
sum="$(sha256sum "$req" | cut -c1-16)"
stamp="$venv/.installed-$sum"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python="$(command -v python3.11 || command -v python3)"
  pip=(--disable-pip-version-check --root-user-action=ignore)
  if "$python" -m venv "$venv" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet "${pip[@]}" --no-deps -r "$req" >&2
  else
    # No ensurepip (Debian without python3-venv): an empty venv filled by the system pip.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install --quiet "${pip[@]}" --no-deps -r "$req" >&2
  fi
  touch "$stamp"
  echo "Python CUDA clients installed in $venv (tests/python/requirements.txt)" >&2
fi
echo "$venv/bin/python"
