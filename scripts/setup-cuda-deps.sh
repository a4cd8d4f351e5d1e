#!/usr/bin/env bash
# Installs the NVIDIA client pieces the tests need, from PyPI wheels, into .deps/ (no GPU needed):
#   .deps/cuda:
#     nvidia-cuda-runtime-cu12 12.9.79  -> cuda.h, cuda_runtime_api.h, libcudart.so.12
#     nvidia-cuda-nvrtc-cu12   12.9.86  -> libnvrtc.so.12 (CUDA C++ -> PTX)
#   .deps/cuda-nvcc:
#     nvidia-cuda-nvcc-cu12    12.9.86  -> crt/host_config.h, crt/host_defines.h, ... which
#                                          cuda_runtime_api.h and cuda_runtime.h include (C programs
#                                          linked against libcudart), fatbinary_section.h
#   .deps/cuda-13.0 (CUDA 13.0, the first 13.x runtime; the 13.x wheels drop the -cuXX suffix and
#   install into nvidia/cu13/{include,lib}):
#     nvidia-cuda-runtime 13.0.96       -> cuda.h, cuda_runtime_api.h, cudaTypedefs.h, libcudart.so.13
#     nvidia-cuda-crt     13.0.88       -> crt/host_config.h, crt/host_defines.h, ... (in 13.x the
#                                          crt/ headers are a wheel of their own, not part of nvcc's)
#     nvidia-cuda-nvcc    13.0.88       -> fatbinary_section.h (cudart_register.c)
#   .deps/cuda-13.5 (the newest 13.x on PyPI when pinned):
#     nvidia-cuda-runtime 13.5.37, nvidia-cuda-crt 13.5.37, nvidia-cuda-nvcc 13.5.37 (as above)
# The nvcc wheel goes to its own directory: `pip install --target` does not merge a second
# package into an existing `nvidia/` directory; a 13.x runtime and its crt and nvcc wheels are installed by
# one pip command, which merges them.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

install() { # <dest> <stamp name> <requirements...>
  local dest="$1" stamp="$1/$2"
  shift 2
  if [ -f "$stamp" ]; then return 0; fi
  mkdir -p "$dest"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dest" "$@"
  touch "$stamp"
  echo "CUDA client wheels installed in $dest: $*" >&2
}

install "$root/.deps/cuda" .installed-12.9 \
  nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-nvrtc-cu12==12.9.86
install "$root/.deps/cuda-nvcc" .installed-12.9.86 nvidia-cuda-nvcc-cu12==12.9.86
install "$root/.deps/cuda-13.0" .installed-13.0.96 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 nvidia-cuda-nvcc==13.0.88
install "$root/.deps/cuda-13.5" .installed-13.5.37 \
  nvidia-cuda-runtime==13.5.37 nvidia-cuda-crt==13.5.37 nvidia-cuda-nvcc==13.5.37
