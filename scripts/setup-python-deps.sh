#!/usr/bin/env bash
# Installs the Python CUDA clients the tests run into two venvs (no GPU needed; from PyPI):
#   .deps/py   numba-cuda, cuda-core/cuda-bindings 12.9, CuPy (cupy-cuda12x), PyCUDA built from
#              source, numba-cuda's test dependencies, CUDA 12.9 wheels; pinned in
#              tests/python/requirements.txt
#   .deps/py13 the same numba-cuda, cuda-core and CuPy on CUDA 13: cuda-bindings 13.x,
#              cupy-cuda13x, the CUDA 13.0 NVRTC, NVVM and runtime wheels only; pinned in
#              tests/python/requirements-cu13.txt
# Idempotent: does nothing for a venv built from its current requirements file and this script
# (stamp <venv>/.installed-<sha256 of both>).
# Prints the venvs' pythons on standard output, one a line: .deps/py's, then .deps/py13's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pip=(--disable-pip-version-check --root-user-action=ignore)
# pip for the venv: its own, or the system pip aimed at it (venvs made without ensurepip).
vpip() {
  if [ -x "$venv/bin/pip" ]; then "$venv/bin/python" -m pip "$@"; else "$python" -m pip --python "$venv/bin/python" "$@"; fi
}
# PyCUDA: only a source distribution on PyPI. Built against a CUDA "root" made of the runtime
# wheel's headers, cudaProfiler.h and a stub libcuda.so (empty, SONAME libcuda.so.1: the cu*
# symbols stay undefined and resolve at run time to the libcuda.so.1 on LD_LIBRARY_PATH; linked
# --no-as-needed, else the linker drops the stub and with it the dependency).
build_pycuda() {
  local py="$venv/bin/python" work="$venv/pycuda-build" site
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$work" && mkdir -p "$work/root/include" "$work/root/lib64"
  cp -r "$site/nvidia/cuda_runtime/include/." "$site/nvidia/cuda_profiler_api/include/." "$work/root/include/"
  echo 'void gpushare_libcuda_stub(void) {}' > "$work/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$work/root/lib64/libcuda.so" "$work/stub.c"
  vpip download --quiet --disable-pip-version-check --no-deps --no-build-isolation --no-binary=pycuda \
    -d "$work" "pycuda==$PYCUDA_VERSION" >&2
  tar -xzf "$work/pycuda-$PYCUDA_VERSION.tar.gz" -C "$work"
  (cd "$work/pycuda-$PYCUDA_VERSION" &&
    "$py" configure.py --cuda-root="$work/root" --no-cuda-enable-curand >/dev/null &&
    LDFLAGS="-Wl,--no-as-needed" vpip install --quiet "${pip[@]}" --no-deps --no-build-isolation . >&2)
  readelf -d "$site"/pycuda/_driver.*.so | grep -q 'NEEDED.*libcuda\.so\.1' ||
    { echo "PyCUDA's _driver was linked without libcuda.so.1" >&2; exit 1; }
  rm -rf "$work"
}
PYCUDA_VERSION=2026.1

# Creates the venv $venv from the requirements file $1 unless its stamp is there; then runs
# "$2" (a function: the venv's extra build steps and checks). Sets $venv_built when it built.
make_venv() {
  local req="$1" sum stamp
  sum="$(cat "$req" "$0" | sha256sum | cut -c1-16)"
  stamp="$venv/.installed-$sum"
  [ -f "$stamp" ] && return 0
  rm -rf "$venv"
  python="$(command -v python3.11 || command -v python3)"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # No ensurepip (Debian without python3-venv): an empty venv filled by the system pip.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
  fi
  vpip install --quiet "${pip[@]}" --no-deps -r "$req" >&2
  "$2"
  touch "$stamp"
  echo "Python CUDA clients installed in $venv (${req#"$root"/})" >&2
}

finish_cu12() {
  build_pycuda
  "$venv/bin/python" -c 'import importlib.util as u, sys
missing = [m for m in ("numba_cuda", "cuda.core", "cuda.bindings", "cupy", "pycuda", "pytest",
    "filecheck", "cffi", "pytools", "mako") if u.find_spec(m) is None]
sys.exit(f"venv incomplete, missing: {missing}" if missing else 0)'
}

# The CUDA 13 venv: every client imports, cuda-bindings is 13.x, and cuda-pathfinder finds the
# CUDA 13 NVRTC and NVVM in the venv's nvidia/cu13 (no system CUDA is looked at).
finish_cu13() {
  "$venv/bin/python" -c 'import sys
import cupy, numba_cuda, cuda.core, pytest, filecheck, cffi
from cuda.bindings import __version__ as v
from cuda.pathfinder import load_nvidia_dynamic_lib as load
if not v.startswith("13."):
    sys.exit(f"cuda-bindings {v}, not 13.x")
for lib in ("nvrtc", "nvvm"):
    found = load(lib)
    if "/cu13/" not in found.abs_path or not found.abs_path.startswith(sys.prefix):
        sys.exit(f"lib{lib} found outside the venv nvidia/cu13: {found.abs_path}")'
}

venv="$root/.deps/py"
make_venv "$root/tests/python/requirements.txt" finish_cu12
venv="$root/.deps/py13"
make_venv "$root/tests/python/requirements-cu13.txt" finish_cu13
echo "$root/.deps/py/bin/python"
echo "$root/.deps/py13/bin/python"
