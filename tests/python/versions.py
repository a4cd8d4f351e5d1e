"""The CUDA versions a venv's clients see on gpushare: the driver version (cuDriverGetVersion
through cuda-bindings, CuPy and numba-cuda), the runtime version (CuPy's and numba-cuda's
cudaRuntimeGetVersion), NVRTC's version and the installed client releases. Deterministic: a direct
run and a run through the shim print the same lines."""
from importlib.metadata import distributions, version

import cupy
from cuda.bindings import driver as cu, nvrtc
from numba import cuda


def num(major, minor):
    return major * 1000 + minor * 10


err, drv = cu.cuInit(0)[0], cu.cuDriverGetVersion()
assert err == cu.CUresult.CUDA_SUCCESS and drv[0] == cu.CUresult.CUDA_SUCCESS, (err, drv)
print(f"cuda.bindings: {version('cuda-bindings')}")
print(f"cuda.bindings cuDriverGetVersion: {drv[1]}")
err, major, minor = nvrtc.nvrtcVersion()
assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
print(f"nvrtcVersion: {major}.{minor}")
wheel = next(d.metadata["Name"] for d in distributions() if d.metadata["Name"].startswith("cupy-"))
print(f"cupy: {cupy.__version__} ({wheel})")
print(f"cupy driverGetVersion: {cupy.cuda.runtime.driverGetVersion()}")
print(f"cupy runtimeGetVersion: {cupy.cuda.runtime.runtimeGetVersion()}")
print(f"numba-cuda: {version('numba-cuda')}")
print(f"numba driver.get_version: {num(*cuda.cudadrv.driver.driver.get_version())}")
print(f"numba runtime.get_version: {num(*cuda.runtime.get_version())}")
