#!/usr/bin/env python3
"""One line per Python package the GPU check uses: "name version" or "name missing"."""
import importlib

for name in ["torch", "torchvision", "cupy", "numba", "numba_cuda", "cuda.core", "pycuda", "numpy"]:
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "installed"))
    except Exception as e:  # noqa: BLE001 - a broken install is reported, not raised
        print(name, "missing" if isinstance(e, ImportError) else "broken (%s)" % type(e).__name__)
