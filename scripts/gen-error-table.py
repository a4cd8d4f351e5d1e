#!/usr/bin/env python3
"""Generates driver-abi/src/error_table.rs from NVIDIA's cuda.h (the CUresult enum).

Each CUDA_ERROR_* value becomes a row (code, name, description); the description is the first
sentence of the header's doc comment. Facts only: the numbers and names are the public ABI.
Run: python3 scripts/gen-error-table.py  (after scripts/setup-cuda-deps.sh)
"""
import pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
header = root / ".deps/cuda/nvidia/cuda_runtime/include/cuda.h"
text = header.read_text()
start = text.index("typedef enum cudaError_enum {")
end = text.index("} CUresult;", start)
body = text[start:end]
rows = []
for m in re.finditer(r"/\*\*(.*?)\*/\s*(CUDA_[A-Z0-9_]+)\s*=\s*(\d+)", body, re.S):
    doc = " ".join(l.strip().lstrip("*").strip() for l in m.group(1).splitlines()).strip()
    doc = re.sub(r"::|\\p |\\e ", "", doc)
    doc = re.sub(r"\s+", " ", doc)
    first = re.split(r"(?<=[.])\s", doc)[0] if doc else m.group(2)
    rows.append((int(m.group(3)), m.group(2), first.replace("\\", "").replace('"', "'")))
out = ["//! CUresult codes, names and descriptions, generated from cuda.h by scripts/gen-error-table.py.",
       "//! Do not edit by hand.", "",
       "/// (code, name, description) for every CUresult value in cuda.h 12.9.",
       "pub const ERROR_TABLE: &[(u32, &str, &str)] = &["]
for code, name, desc in rows:
    out.append(f'    ({code}, "{name}", "{desc}"),')
out.append("];")
(root / "driver-abi/src/error_table.rs").write_text("\n".join(out) + "\n")
print(f"{len(rows)} codes", file=sys.stderr)
