#!/usr/bin/env bash
# Installs the Python CUDA clients the tests run (numba-cuda, cuda-core/cuda-bindings, CuPy,
# PyCUDA built from source, and numba-cuda's test dependencies), pinned in
# tests/python/requirements.txt, into the venv .deps/py (no GPU needed; from PyPI). Idempotent: does nothing when the venv was built from the
# current requirements file and script (stamp .deps/py/.installed-<sha256 of both>).
# Prints the venv's python on standard output.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/tests/python/requirements.txt"
venv="$root/.deps/py"
sum="$(cat "$req" "$0" | sha256sum | cut -c1-16)"
pip=(--disable-pip-version-check --root-user-action=ignore)
stamp="$venv/.installed-$sum"
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

if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python="$(command -v python3.11 || command -v python3)"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # No ensurepip (Debian without python3-venv): an empty venv filled by the system pip.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
  fi
  vpip install --quiet "${pip[@]}" --no-deps -r "$req" >&2
  build_pycuda
  "$venv/bin/python" -c 'import importlib.util as u, sys
missing = [m for m in ("numba_cuda", "cuda.core", "cuda.bindings", "cupy", "pycuda", "pytest",
    "filecheck", "cffi", "pytools", "mako") if u.find_spec(m) is None]
sys.exit(f"venv incomplete, missing: {missing}" if missing else 0)'
  touch "$stamp"
  echo "Python CUDA clients installed in $venv (tests/python/requirements.txt)" >&2
fi
echo "$venv/bin/python"
