"""Mamba-v1 mixer, RMSNorm and the pre-norm residual block of the TrackSSM encoder.

Parameter names and shapes follow ``mamba_ssm.modules.mamba_simple.Mamba`` so that official checkpoints load
unchanged. Two interchangeable backends compute the same function from the same tensors:

* ``torch``: plain PyTorch tuned for CPU. The TrackSSM history is only 5 steps long, so the selective scan is
  unrolled over time with whole-tensor ops on (batch, state, channels) blocks; the scan has its own autograd
  function that keeps only the small per-step inputs and recomputes the states in backward (memory O(B*L*D)
  instead of O(B*L*D*N)), processing the batch in cache-sized chunks.
* ``mamba_ssm``: the fused kernels of the ``mamba-ssm`` package (CUDA); used by ``auto`` on CUDA when importable.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

BACKENDS = ("auto", "torch", "mamba_ssm")


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (no bias), computed in float32 like mamba-ssm's."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (out * self.weight.float()).to(x.dtype)


# --------------------------------------------------------------------------------------------- selective scan
# The scan works on (b, L, N, D) blocks (D innermost: long contiguous rows for the broadcasts) over small batch
# chunks, so that the (b, L, N, D) temporaries stay in cache; this is several times faster on CPU than one pass
# over the whole batch in (B, L, D, N) layout.
SCAN_CHUNK_ELEMENTS = 8 * 5 * 16 * 512


def _states_(dA: Tensor, hs: Tensor) -> Tensor:
    """In place: turns hs = dBu (b, L, N, D) into the states h_t = dA_t * h_{t-1} + dBu_t (zero initial state)."""
    for t in range(1, hs.shape[1]):
        hs[:, t].addcmul_(dA[:, t], hs[:, t - 1])
    return hs


def _vec_mat(v: Tensor, m: Tensor) -> Tensor:
    """sum_n v[b, l, n] m[b, l, n, :] as one batched (1 x N) @ (N x D) product: (b, L, D)."""
    b, L, N, D = m.shape
    return torch.bmm(v.reshape(b * L, 1, N), m.reshape(b * L, N, D)).view(b, L, D)


def _scan_fwd(u: Tensor, dt: Tensor, AT: Tensor, Bm: Tensor, Cm: Tensor) -> Tensor:
    dA = torch.exp(dt.unsqueeze(2) * AT)                                # (b, L, N, D)
    hs = _states_(dA, Bm.unsqueeze(-1) * (dt * u).unsqueeze(2))
    return _vec_mat(Cm, hs)                                             # y_t = C_t . h_t: (b, L, D)


def _scan_bwd(gy: Tensor, u: Tensor, dt: Tensor, AT: Tensor, Bm: Tensor, Cm: Tensor) -> tuple[Tensor, ...]:
    L = u.shape[1]
    dA = torch.exp(dt.unsqueeze(2) * AT)
    dtu = dt * u
    hs = _states_(dA, Bm.unsqueeze(-1) * dtu.unsqueeze(2))             # recomputed states
    gC = (hs * gy.unsqueeze(2)).sum(-1)                                 # sum_d gy_t[d] h_t[n, d]
    # gradient w.r.t. h_t: direct term C_t gy_t plus the carried term dA_{t+1} * gh_{t+1}
    gh = Cm.unsqueeze(-1) * gy.unsqueeze(2)
    for t in range(L - 2, -1, -1):
        gh[:, t].addcmul_(dA[:, t + 1], gh[:, t + 1])
    gdtu = _vec_mat(Bm, gh)                                             # dBu_t = B_t (x) dtu_t
    gB = (gh * dtu.unsqueeze(2)).sum(-1)
    # dA_t = exp(dt_t A) multiplies h_{t-1} (zero at t = 0): gradient of the exponent, in place in gh
    gexp = gh[:, 1:].mul_(hs[:, :-1]).mul_(dA[:, 1:])
    gdt = gdtu * u
    gdt[:, 1:] += (gexp * AT).sum(2)
    gAT = (gexp * dt[:, 1:].unsqueeze(2)).sum((0, 1))
    return gdtu * dt, gdt, gAT, gB, gC


def _chunks(n: int, per_sample: int, device: torch.device | None = None) -> list[slice]:
    """Batch slices of about SCAN_CHUNK_ELEMENTS scan elements each (one slice off the CPU)."""
    if device is not None and device.type != "cpu":
        return [slice(0, n)]
    step = max(1, SCAN_CHUNK_ELEMENTS // max(1, per_sample))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


class _SelectiveScan(torch.autograd.Function):
    """y_t = C_t . h_t with h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t (zero initial state).

    Inputs are channels-last: u, dt (B, L, D); A (D, N); Bm, Cm (B, L, N). Returns y (B, L, D) without the D*u
    skip and the gate (those stay in ordinary autograd). Saves only the inputs; backward recomputes the states.
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor, dt: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor) -> Tensor:
        AT = A.t().contiguous()
        ctx.save_for_backward(u, dt, A, Bm, Cm)
        parts = _chunks(u.shape[0], u[0].numel() * A.shape[1], u.device)
        if len(parts) == 1:
            return _scan_fwd(u, dt, AT, Bm, Cm)
        return torch.cat([_scan_fwd(u[s], dt[s], AT, Bm[s], Cm[s]) for s in parts])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor, ...]:
        u, dt, A, Bm, Cm = ctx.saved_tensors
        AT, gy = A.t().contiguous(), gy.contiguous()
        parts = _chunks(u.shape[0], u[0].numel() * A.shape[1], u.device)
        grads = [_scan_bwd(gy[s], u[s], dt[s], AT, Bm[s], Cm[s]) for s in parts]
        if len(grads) == 1:
            gu, gdt, gAT, gB, gC = grads[0]
        else:
            gu, gdt, gB, gC = (torch.cat([g[i] for g in grads]) for i in (0, 1, 3, 4))
            gAT = torch.stack([g[2] for g in grads]).sum(0)
        return gu, gdt, gAT.t(), gB, gC


def selective_scan(u: Tensor, dt: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor) -> Tensor:
    """Selective scan from a zero state, channels-last (see ``_SelectiveScan``); float32 or float64."""
    return _SelectiveScan.apply(u, dt, A, Bm, Cm)


def selective_scan_plain(u: Tensor, dt: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor) -> Tensor:
    """The same scan written with ordinary autograd ops (reference for the custom backward)."""
    dA = torch.exp(dt.unsqueeze(-1) * A)
    dBu = (dt * u).unsqueeze(-1) * Bm.unsqueeze(2)
    h = dBu[:, 0]
    ys = [torch.matmul(h, Cm[:, 0].unsqueeze(-1)).squeeze(-1)]
    for t in range(1, u.shape[1]):
        h = dA[:, t] * h + dBu[:, t]
        ys.append(torch.matmul(h, Cm[:, t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(ys, dim=1)


# --------------------------------------------------------------------------------------------- mamba-ssm glue
_MAMBA_SSM_OK: bool | None = None


def mamba_ssm_available() -> bool:
    """True when ``mamba_ssm`` imports with its compiled selective-scan kernel (needed for the CUDA path)."""
    global _MAMBA_SSM_OK
    if _MAMBA_SSM_OK is None:
        try:
            import selective_scan_cuda  # noqa: F401  (compiled extension of mamba-ssm)
            from mamba_ssm.ops import selective_scan_interface  # noqa: F401

            _MAMBA_SSM_OK = hasattr(selective_scan_cuda, "fwd")
        except Exception:  # ImportError, or a broken CUDA/triton install
            _MAMBA_SSM_OK = False
    return _MAMBA_SSM_OK


def resolve_backend(backend: str, device: torch.device) -> str:
    """'torch' or 'mamba_ssm' for a tensor on ``device``; ``auto`` picks mamba_ssm only on CUDA with kernels."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "mamba_ssm" if device.type == "cuda" and mamba_ssm_available() else "torch"
    return backend


# --------------------------------------------------------------------------------------------- mixer and block
class MambaMixer(nn.Module):
    """Mamba-v1 selective SSM mixer (same parameters and initialisation as mamba-ssm's ``Mamba``)."""

    def __init__(self, d_model: int = 256, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, conv_bias: bool = True, bias: bool = False,
                 dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 backend: str = "auto") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # dt_proj: uniform weights of std dt_rank^-0.5, bias = softplus^-1 of a log-uniform dt in [dt_min, dt_max]
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]
        # S4D-real: A = -(1..N) per channel, stored as log
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, hidden: Tensor, last_only: bool = False) -> Tensor:
        """(B, L, d_model) -> (B, L, d_model); with ``last_only`` only the last step, (B, 1, d_model)."""
        if resolve_backend(self.backend, hidden.device) == "mamba_ssm":
            out = self._forward_mamba_ssm(hidden)
            return out[:, -1:] if last_only else out
        return self._forward_torch(hidden, last_only)

    def _conv(self, x: Tensor) -> Tensor:
        """Causal depthwise conv over time on channels-last x (B, L, D), bias included.

        Written as d_conv shifted multiply-adds: for these tiny sequences it is much cheaper than F.conv1d's
        depthwise backward on CPU (same result: out_t = bias + sum_k w_k x_{t - (d_conv - 1) + k}).
        """
        L, K = x.shape[1], self.d_conv
        w = self.conv1d.weight[:, 0, :]                                 # (D, K)
        xp = F.pad(x, (0, 0, K - 1, 0))                                 # zero history before t = 0
        out = xp[:, 0:L] * w[:, 0]
        for k in range(1, K):
            out = torch.addcmul(out, xp[:, k:k + L], w[:, k])
        return out if self.conv1d.bias is None else out + self.conv1d.bias

    def _forward_torch(self, hidden: Tensor, last_only: bool) -> Tensor:
        w_x, w_z = self.in_proj.weight.split(self.d_inner, dim=0)
        b_x, b_z = (None, None) if self.in_proj.bias is None else self.in_proj.bias.split(self.d_inner)
        x = F.linear(hidden, w_x, b_x)                                  # (B, L, D)
        # the gate is only needed where the output is: the last step when last_only
        z = F.linear(hidden[:, -1:] if last_only else hidden, w_z, b_z)
        x = F.silu(self._conv(x))
        x_dbl = F.linear(x, self.x_proj.weight)                         # (B, L, R + 2N)
        dt, Bm, Cm = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(F.linear(dt, self.dt_proj.weight, self.dt_proj.bias))
        A = -torch.exp(self.A_log.float()).to(x.dtype)
        y = selective_scan(x, dt, A, Bm, Cm)
        if last_only:
            y, x = y[:, -1:], x[:, -1:]
        y = (y + x * self.D.to(x.dtype)) * F.silu(z)
        return self.out_proj(y)

    def _forward_mamba_ssm(self, hidden: Tensor) -> Tensor:
        """Same function through mamba-ssm's ops (fused ``mamba_inner_fn`` when causal-conv1d is present)."""
        from mamba_ssm.ops import selective_scan_interface as ssi

        B, L, _ = hidden.shape
        # (2D, B*L) -> (B, 2D, L): channels-first layout that the kernels expect
        xz = (self.in_proj.weight @ hidden.reshape(B * L, -1).t()).reshape(-1, B, L).permute(1, 0, 2)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(xz.dtype)[:, None]
        A = -torch.exp(self.A_log.float())
        if getattr(ssi, "causal_conv1d_fn", None) is not None and hidden.is_cuda:  # fused path needs causal-conv1d
            return ssi.mamba_inner_fn(xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                                      self.dt_proj.weight, self.out_proj.weight, self.out_proj.bias, A, None, None,
                                      self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])
        x_dbl = F.linear(x.transpose(1, 2).reshape(B * L, -1), self.x_proj.weight)
        dt, Bm, Cm = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (self.dt_proj.weight @ dt.t()).reshape(-1, B, L).permute(1, 0, 2)
        Bm = Bm.reshape(B, L, -1).transpose(1, 2).contiguous()
        Cm = Cm.reshape(B, L, -1).transpose(1, 2).contiguous()
        y = ssi.selective_scan_fn(x, dt, A, Bm, Cm, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                                  delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    """Pre-norm residual block (mamba-ssm ``Block``): residual += hidden; hidden = mixer(norm(residual))."""

    def __init__(self, d_model: int, norm_eps: float = 1e-5, **mixer_kwargs: Any) -> None:
        super().__init__()
        self.mixer = MambaMixer(d_model, **mixer_kwargs)
        self.norm = RMSNorm(d_model, eps=norm_eps)

    def forward(self, hidden: Tensor, residual: Tensor | None, last_only: bool = False) -> tuple[Tensor, Tensor]:
        residual = hidden if residual is None else hidden + residual
        return self.mixer(self.norm(residual), last_only=last_only), residual
