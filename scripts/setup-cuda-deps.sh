#!/usr/bin/env bash
# Installs the NVIDIA client pieces the tests need, from PyPI wheels, into .deps/ (no GPU needed):
#   nvidia-cuda-runtime-cu12 12.9.79  -> cuda.h, cuda_runtime_api.h, libcudart.so.12
#   nvidia-cuda-nvrtc-cu12   12.9.86  -> libnvrtc.so.12 (CUDA C++ -> PTX)
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/cuda"
stamp="$dest/.installed-12.9"
if [ -f "$stamp" ]; then exit 0; fi
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dest" \
  nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-nvrtc-cu12==12.9.86
touch "$stamp"
echo "CUDA client wheels installed in $dest" >&2
