"""Training speed of TrackSSM on CPU: this project's torch backend vs mamba-ssm's reference selective scan.

One training step = the official loss (forward through encoder and 6 decoder heads), backward and an Adam step on
every parameter (phase-2 setting), on a batch of official per-track samples (condition (B, 5, 8)). The same model
(same weights) runs

* ``torch``: the project's CPU backend (unrolled scan with its own autograd);
* ``mamba_ssm``: the model's mamba-ssm glue with mamba-ssm's own ``selective_scan_ref`` (pure PyTorch reference)
  standing in for the compiled CUDA kernel, which cannot be built here (a stub ``selective_scan_cuda`` module is
  registered so the package imports; nothing from it is called).

Outputs are checked to agree (loss and gradients). FLOPs per sample are counted with
``torch.utils.flop_counter.FlopCounterMode`` on one forward + backward (matrix products and convolutions only;
element-wise work is not counted), and the achieved rate is reported as a share of the CPU's measured float32
matrix-multiply peak (a large ``torch.mm`` with the same number of threads).

    .venv/bin/python bench/train_speed.py [--threads 2] [--batch 512] [--seconds 5]
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trackssm_lib.model import TrackSSM  # noqa: E402


def enable_mamba_ssm_reference() -> bool:
    """Import mamba-ssm on CPU with its reference scan; False when mamba-ssm is not installed."""
    if "selective_scan_cuda" not in sys.modules:
        try:
            import selective_scan_cuda  # noqa: F401
        except ImportError:
            sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
    try:
        from mamba_ssm.modules import mamba_simple
        from mamba_ssm.ops import selective_scan_interface as ssi
    except ImportError as exc:
        print(f"mamba-ssm not importable ({exc}): only the torch backend is measured", file=sys.stderr)
        return False
    ssi.selective_scan_fn = ssi.selective_scan_ref
    mamba_simple.selective_scan_fn = ssi.selective_scan_ref
    return True


def make_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plausible normalised tracks: 7 boxes with small constant-velocity motion plus noise."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(batch, 1, 4, generator=g) * torch.tensor([0.8, 0.6, 0.2, 0.3]) + torch.tensor(
        [0.1, 0.2, 0.02, 0.05])
    vel = (torch.rand(batch, 1, 4, generator=g) - 0.5) * 0.01
    boxes = start + vel * torch.arange(7.0)[None, :, None] + torch.randn(batch, 7, 4, generator=g) * 1e-3
    hist = boxes[:, :6]
    cond = torch.cat([hist[:, 1:], hist[:, 1:] - hist[:, :-1]], dim=-1)
    cls = torch.randint(0, 7, (batch,), generator=g)
    return cond, cls, boxes[:, 6]


def step_fn(model: TrackSSM, opt: torch.optim.Optimizer, cond, cls, target) -> float:
    loss = model.loss(cond, cls, target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def samples_per_second(model: TrackSSM, batch: int, seconds: float) -> float:
    cond, cls, target = make_batch(batch, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    for _ in range(2):  # warm-up
        step_fn(model, opt, cond, cls, target)
    n, t0 = 0, time.perf_counter()
    while True:
        step_fn(model, opt, cond, cls, target)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return n * batch / elapsed


def flops_per_sample(model: TrackSSM, batch: int = 64) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    cond, cls, target = make_batch(batch, seed=2)
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss(cond, cls, target).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def check_same_outputs(model: TrackSSM) -> dict[str, float]:
    cond, cls, target = make_batch(32, seed=3)
    results = {}
    for backend in ("torch", "mamba_ssm"):
        m = copy.deepcopy(model).set_backend(backend)
        loss = m.loss(cond, cls, target)
        loss.backward()
        results[backend] = (loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    (l1, g1), (l2, g2) = results["torch"], results["mamba_ssm"]
    grad_rel = max(float((g1[k] - g2[k]).norm() / (g1[k].norm() + 1e-12)) for k in g1)
    return {"loss_abs_diff": float((l1 - l2).abs()), "max_grad_rel_diff": grad_rel}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512, help="samples per training step")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per backend")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TrackSSM(backend="torch")
    with torch.no_grad():  # non-zero class parameters so that their gradients are exercised too
        model.class_embedding.weight.normal_(0, 0.02)
    have_mamba = enable_mamba_ssm_reference()
    peak = matmul_peak_gflops()
    flops = flops_per_sample(model)
    out = {"threads": torch.get_num_threads(), "batch": args.batch, "torch_version": torch.__version__,
           "matmul_peak_gflops": round(peak, 1), "train_gflop_per_sample": round(flops / 1e9, 5)}
    if have_mamba:
        out["parity"] = check_same_outputs(model)
        assert out["parity"]["loss_abs_diff"] < 1e-5 and out["parity"]["max_grad_rel_diff"] < 1e-3, out["parity"]
    backends = ["torch"] + (["mamba_ssm"] if have_mamba else [])
    for backend in backends:
        m = copy.deepcopy(model).set_backend(backend)
        sps = samples_per_second(m, args.batch, args.seconds)
        achieved = sps * flops / 1e9
        out[backend] = {"samples_per_s": round(sps, 1), "gflops": round(achieved, 2),
                        "share_of_matmul_peak": round(achieved / peak, 4)}
    if have_mamba:
        out["speedup_torch_vs_mamba_ssm_ref"] = round(out["torch"]["samples_per_s"]
                                                      / out["mamba_ssm"]["samples_per_s"], 2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
