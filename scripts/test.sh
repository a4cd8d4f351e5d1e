#!/usr/bin/env bash
# The test suite: installs what it needs (CUDA client wheels from PyPI, crates), builds the workspace
# in release mode (the CPU device's interpreter is what the tests run on) and runs every test.
# Usage: scripts/test.sh            (all tests)
#        scripts/test.sh -p gpushare-ptx   (extra args go to cargo test)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cuda-deps.sh
scripts/setup-python-deps.sh >/dev/null  # the venv .deps/py: numba-cuda, cuda-core, CuPy (tests/tests/python.rs)
cargo fetch --locked 2>/dev/null || cargo fetch
# Committed PTX must match what NVRTC 12.9 produces from the .cu sources.
if [ -f scripts/compile-kernels.py ]; then python3 scripts/compile-kernels.py --check; fi
if [ -f scripts/gen-proc-table.py ]; then python3 scripts/gen-proc-table.py --check; fi
# The cdylib and example binaries must exist before the black-box tests that load/run them.
cargo build --release --workspace --bins --lib
cargo test --release --workspace "$@"
