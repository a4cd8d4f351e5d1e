#!/usr/bin/env python3
"""Holds two output directories of scripts/gpu-check/corpus.c against each other.

Usage: compare.py REFERENCE_DIR DEVICE_DIR [--rel 1e-4] [--abs 1e-6]

For each <name>.<type> file of REFERENCE_DIR (type f32, f64 or u32): exact (the bytes are
identical) and within tolerance (every element |a - b| <= abs + rel * |a|; integers exactly).
Prints one line per kernel and a last line "exact E/N within-tolerance T/N"; exits 0 when every
kernel is within tolerance, 1 otherwise. Standard library only (the GPU machine may lack numpy).
"""
import math
import os
import struct
import sys

FORMATS = {"f32": ("f", 4), "f64": ("d", 8), "u32": ("I", 4)}

# Kernels that sum floats with atomics across blocks: the sum depends on the order in which
# blocks finish, which differs from run to run on any device with concurrent blocks (a GPU, or
# the CPU device with several host threads). Held within this relative tolerance even when an
# exact comparison is asked for, and marked in the output.
ORDER_DEPENDENT = {"reduce_sum.f32": 1e-5}


def values(path, kind):
    code, size = FORMATS[kind]
    with open(path, "rb") as f:
        data = f.read()
    return struct.unpack("<%d%s" % (len(data) // size, code), data), data


def compare(ref_path, dev_path, kind, rel, abs_tol):
    """(exact, within, worst abs diff, worst index) for one kernel's output."""
    a, raw_a = values(ref_path, kind)
    b, raw_b = values(dev_path, kind)
    if len(a) != len(b):
        return False, False, float("inf"), -1
    worst, where, within = 0.0, -1, True
    for i, (x, y) in enumerate(zip(a, b)):
        if kind == "u32":
            ok, diff = x == y, float(abs(x - y))
        elif math.isnan(x) and math.isnan(y):
            ok, diff = True, 0.0
        else:
            diff = abs(x - y)
            ok = diff <= abs_tol + rel * abs(x)
        within &= ok
        if diff > worst:
            worst, where = diff, i
    return raw_a == raw_b, within, worst, where


def main(argv):
    ref, dev = argv[1], argv[2]
    rel = float(argv[argv.index("--rel") + 1]) if "--rel" in argv else 1e-4
    abs_tol = float(argv[argv.index("--abs") + 1]) if "--abs" in argv else 1e-6
    names = sorted(n for n in os.listdir(ref) if n.rsplit(".", 1)[-1] in FORMATS)
    exact_n = within_n = 0
    for name in names:
        dev_path = os.path.join(dev, name)
        if not os.path.exists(dev_path):
            print("%-20s MISSING on the device side" % name)
            continue
        kind = name.rsplit(".", 1)[1]
        k_rel = max(rel, ORDER_DEPENDENT.get(name, 0.0))
        exact, within, worst, where = compare(os.path.join(ref, name), dev_path, kind, k_rel, abs_tol)
        exact_n += exact
        within_n += within
        verdict = "exact" if exact else ("within tolerance" if within else "DIFFERENT")
        note = " (float atomics: order-dependent, rel %g)" % k_rel if name in ORDER_DEPENDENT else ""
        print("%-20s %-16s max |diff| %.3g (element %d)%s" % (name, verdict, worst, where, note))
    total = len(names)
    print("exact %d/%d within-tolerance %d/%d (rel %g, abs %g)" % (exact_n, total, within_n, total, rel, abs_tol))
    return 0 if total > 0 and within_n == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
