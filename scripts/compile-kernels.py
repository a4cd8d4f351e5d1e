#!/usr/bin/env python3
"""Compile every examples/kernels/*.cu to PTX with NVRTC (from the pinned PyPI wheel).

Usage:
    scripts/compile-kernels.py            # (re)write examples/kernels/<name>.ptx
    scripts/compile-kernels.py --check    # fail if a committed .ptx differs from a fresh compile
    scripts/compile-kernels.py FILE.cu... # only these sources

NVRTC is called through ctypes (no CUDA toolkit, no GPU needed). The library comes from
.deps/cuda/nvidia/cuda_nvrtc/lib, installed by scripts/setup-cuda-deps.sh, which this script
runs first (it is idempotent).

Options passed to nvrtcCompileProgram:
    --gpu-architecture=compute_90   PTX for sm_90 (H100/H200 class), .version 8.x
    --std=c++17
    -default-device                 unannotated functions are __device__
"""

import argparse
import ctypes
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_DIR = ROOT / "examples" / "kernels"
NVRTC_LIB_DIR = ROOT / ".deps" / "cuda" / "nvidia" / "cuda_nvrtc" / "lib"

OPTIONS = [
    "--gpu-architecture=compute_90",
    "--std=c++17",
    "-default-device",
]

NVRTC_SUCCESS = 0


def ensure_deps() -> None:
    setup = ROOT / "scripts" / "setup-cuda-deps.sh"
    subprocess.run(["bash", str(setup)], check=True)


def load_nvrtc() -> ctypes.CDLL:
    # libnvrtc dlopen()s libnvrtc-builtins.so.12.9 by its bare name at compile time; load it
    # first (RTLD_GLOBAL) so that lookup is satisfied without LD_LIBRARY_PATH.
    for builtins in sorted(NVRTC_LIB_DIR.glob("libnvrtc-builtins.so.*")):
        ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(NVRTC_LIB_DIR / "libnvrtc.so.12"), mode=ctypes.RTLD_GLOBAL)

    prog_p = ctypes.POINTER(ctypes.c_void_p)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
    lib.nvrtcVersion.restype = ctypes.c_int
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.nvrtcCreateProgram.restype = ctypes.c_int
    lib.nvrtcCreateProgram.argtypes = [
        prog_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
        ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
    ]
    lib.nvrtcCompileProgram.restype = ctypes.c_int
    lib.nvrtcCompileProgram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcGetProgramLogSize.restype = ctypes.c_int
    lib.nvrtcGetProgramLogSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    lib.nvrtcGetProgramLog.restype = ctypes.c_int
    lib.nvrtcGetProgramLog.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nvrtcGetPTXSize.restype = ctypes.c_int
    lib.nvrtcGetPTXSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    lib.nvrtcGetPTX.restype = ctypes.c_int
    lib.nvrtcGetPTX.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nvrtcDestroyProgram.restype = ctypes.c_int
    lib.nvrtcDestroyProgram.argtypes = [prog_p]
    return lib


class NvrtcError(Exception):
    pass


def check(lib: ctypes.CDLL, rc: int, what: str) -> None:
    if rc != NVRTC_SUCCESS:
        raise NvrtcError(f"{what} failed: {lib.nvrtcGetErrorString(rc).decode()} ({rc})")


def compile_one(lib: ctypes.CDLL, src_path: Path) -> str:
    """Returns the PTX text; raises NvrtcError (with the program log) on failure."""
    src = src_path.read_bytes()
    prog = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), src, src_path.name.encode(), 0, None, None),
          "nvrtcCreateProgram")
    try:
        opts = (ctypes.c_char_p * len(OPTIONS))(*[o.encode() for o in OPTIONS])
        rc = lib.nvrtcCompileProgram(prog, len(OPTIONS), opts)
        log_size = ctypes.c_size_t()
        check(lib, lib.nvrtcGetProgramLogSize(prog, ctypes.byref(log_size)), "nvrtcGetProgramLogSize")
        log = ""
        if log_size.value > 1:
            buf = ctypes.create_string_buffer(log_size.value)
            check(lib, lib.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
            log = buf.value.decode(errors="replace").strip()
        if rc != NVRTC_SUCCESS:
            raise NvrtcError(
                f"nvrtcCompileProgram({src_path.name}) failed: "
                f"{lib.nvrtcGetErrorString(rc).decode()}\n--- program log ---\n{log}"
            )
        if log:
            # Warnings: print them, but the compile succeeded.
            print(f"{src_path.name}: NVRTC log:\n{log}", file=sys.stderr)
        ptx_size = ctypes.c_size_t()
        check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(ptx_size)), "nvrtcGetPTXSize")
        buf = ctypes.create_string_buffer(ptx_size.value)
        check(lib, lib.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return buf.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if any committed .ptx differs from a fresh compile")
    ap.add_argument("sources", nargs="*", type=Path, help="specific .cu files (default: all)")
    args = ap.parse_args()

    ensure_deps()
    lib = load_nvrtc()
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")

    sources = [p.resolve() for p in args.sources] or sorted(KERNEL_DIR.glob("*.cu"))
    if not sources:
        print(f"no .cu files in {KERNEL_DIR}", file=sys.stderr)
        return 1

    failures = 0
    for src in sources:
        out = src.with_suffix(".ptx")
        rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
        try:
            ptx = compile_one(lib, src)
        except NvrtcError as e:
            print(f"error: {e}", file=sys.stderr)
            failures += 1
            continue
        if args.check:
            if not out.exists():
                print(f"MISSING {rel} (run scripts/compile-kernels.py)", file=sys.stderr)
                failures += 1
            elif out.read_text() != ptx:
                print(f"STALE   {rel} differs from a fresh compile (run scripts/compile-kernels.py)",
                      file=sys.stderr)
                failures += 1
            else:
                print(f"ok      {rel}")
        else:
            if not out.exists() or out.read_text() != ptx:
                out.write_text(ptx)
                print(f"wrote   {rel}")
            else:
                print(f"same    {rel}")

    print(f"NVRTC {major.value}.{minor.value}, {len(sources)} source(s), {failures} failure(s)",
          file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
