#!/usr/bin/env python3
"""PyTorch on whatever CUDA driver the process gets (directly, or the shim under `gpushare run`).

Usage: torch_check.py RESULT.json            runs the checks, writes and prints a JSON result
       torch_check.py --compare A.json B.json holds two results' numbers against each other

Checks (each recorded as {"ok": bool, ...}, an exception as its message):
  device     device count, name, compute capability, memory
  roundtrip  a 64 MiB tensor to the device and back, bit-exact
  model      ResNet-18 (torchvision, weights=None, seeded) on a seeded 2x3x224x224 batch; a small
             hand-written conv net when torchvision is missing; logits kept for --compare
  matmul     a 1024x1024 cuBLAS matmul (TF32 off) against the CPU's, and its result's digest
  graph      torch.cuda.CUDAGraph: capture a few ops, replay with new input, check the output
The exit status is 0 when every check is ok. --compare prints whether logits and the matmul
digest are exactly equal and the largest logit difference, and exits 0 when within 1e-3 relative.
"""
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def check(results, name, fn):
    start = time.time()
    try:
        results[name] = dict(ok=True, **fn())
    except Exception as e:  # noqa: BLE001 - every failure is a result
        results[name] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    results[name]["seconds"] = round(time.time() - start, 3)


def digest(t):
    import torch

    t = t.detach().cpu().contiguous()
    try:
        data = t.numpy().tobytes()
    except Exception:  # noqa: BLE001 - torch without numpy
        data = bytes(t.flatten().view(torch.uint8).tolist())
    return hashlib.sha256(data).hexdigest()[:16]


def device(torch):
    p = torch.cuda.get_device_properties(0)
    return {"count": torch.cuda.device_count(), "name": p.name,
            "capability": "%d.%d" % (p.major, p.minor), "memory_mib": p.total_memory >> 20}


def roundtrip(torch):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 1 << 30, (16 << 20,), generator=g, dtype=torch.int32)
    y = x.cuda().cpu()
    if not torch.equal(x, y):
        raise AssertionError("bytes differ after the round trip")
    return {"mib": 64}


def small_net(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def model(torch):
    torch.manual_seed(0)
    try:
        import torchvision
        net, which = torchvision.models.resnet18(weights=None), "resnet18"
    except ImportError:
        net, which = small_net(torch), "small conv net (no torchvision)"
    net = net.eval().cuda()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = net(x.cuda()).float().cpu()
    return {"model": which, "digest": digest(logits), "logits": logits.flatten().tolist()}


def matmul(torch):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    c = (a.cuda() @ b.cuda()).cpu()
    err = (c - a @ b).abs().max().item()
    if err > 1e-2:
        raise AssertionError("max |GPU - CPU| = %g" % err)
    return {"digest": digest(c), "max_abs_vs_cpu": err}


def graph(torch):
    static_in = torch.zeros(1 << 20, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # warm-up on a side stream, as the documentation asks
            static_out = (static_in * 2 + 1).relu()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_out = (static_in * 2 + 1).relu()
    x = torch.linspace(-1, 1, 1 << 20)
    static_in.copy_(x.cuda())
    g.replay()
    torch.cuda.synchronize()
    if not torch.equal(static_out.cpu(), (x * 2 + 1).relu()):
        raise AssertionError("the replayed graph's output is wrong")
    return {"replays": 1}


def run(path):
    results = {}
    try:
        import torch
    except ImportError as e:
        results["import"] = {"ok": False, "error": str(e)}
        return finish(path, results)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    results["versions"] = {"ok": True, "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version()}
    for name, fn in [("device", device), ("roundtrip", roundtrip), ("model", model),
                     ("matmul", matmul), ("graph", graph)]:
        check(results, name, lambda fn=fn: fn(torch))
    return finish(path, results)


def finish(path, results):
    with open(path, "w") as f:
        json.dump(results, f)
    shown = {k: {kk: vv for kk, vv in v.items() if kk != "logits"} for k, v in results.items()}
    print(json.dumps(shown, indent=1))
    return 0 if all(v.get("ok") for v in results.values()) else 1


def compare(a_path, b_path):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    la, lb = a.get("model", {}).get("logits"), b.get("model", {}).get("logits")
    if not la or not lb or len(la) != len(lb):
        print(json.dumps({"comparable": False}))
        return 1
    worst = max(abs(x - y) for x, y in zip(la, lb))
    scale = max(abs(x) for x in la) or 1.0
    out = {"logits_exact": la == lb, "logits_max_abs_diff": worst,
           "logits_within_1e-3_rel": worst <= 1e-3 * scale,
           "matmul_exact": a.get("matmul", {}).get("digest") == b.get("matmul", {}).get("digest")}
    print(json.dumps(out))
    return 0 if out["logits_within_1e-3_rel"] else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(run(sys.argv[1]))
