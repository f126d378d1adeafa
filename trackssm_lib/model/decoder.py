"""Flow-SSM decoder of TrackSSM: 6 cascaded heads, each one selective-SSM step that refines the box.

Each head embeds the current box (sine embedding), takes its SSM parameters (dt, B, C) from the encoder's
"flow" feature, advances the state carried from the previous head by one step, and regresses an ABSOLUTE box.
The next head starts from this head's detached box and state (official behaviour, so gradients stay per head).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sine_box_embedding(box: Tensor, dim_per_coord: int = 64, temperature: float = 10000.0) -> Tensor:
    """(B, 4) normalised (cx, cy, w, h) -> (B, 4 * dim_per_coord); per coordinate sin/cos pairs of 2*pi*x/f_k."""
    k = torch.arange(dim_per_coord, dtype=torch.float32, device=box.device)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / dim_per_coord)
    phase = box.unsqueeze(-1) * (2 * math.pi) / freq.to(box.dtype)            # (B, 4, dim)
    emb = torch.stack((phase[..., 0::2].sin(), phase[..., 1::2].cos()), dim=-1)  # (B, 4, dim/2, 2)
    return emb.flatten(1)


class FlowSSMHead(nn.Module):
    """One decoder head (official ``Mamba_decoder``: expand 1, d_state 16, dt_rank 16, FFN 512)."""

    def __init__(self, d_model: int = 256, d_state: int = 16, dt_rank: int | None = None, d_ffn: int = 512,
                 n_coords: int = 4, output_sigmoid: bool = False) -> None:
        super().__init__()
        self.d_model, self.d_state, self.n_coords = d_model, d_state, n_coords
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        self.output_sigmoid = output_sigmoid
        self.in_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        self.x_proj = nn.Linear(d_model, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_model, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_model, 1))
        self.D = nn.Parameter(torch.ones(d_model))
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.normal_bboxes = nn.Linear(d_model, n_coords)

    def forward(self, box: Tensor, flow: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """box (B, 4), flow (B, d_model), state (B, d_model, d_state) or None (zeros) -> (new box, new state)."""
        u, z = self.in_proj(sine_box_embedding(box, self.d_model // self.n_coords)).split(self.d_model, dim=-1)
        u = F.silu(u)
        dt, Bm, Cm = self.x_proj(flow).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))                                     # (B, D)
        A = -torch.exp(self.A_log.float()).to(u.dtype)                        # (D, N)
        new_state = (dt * u).unsqueeze(-1) * Bm.unsqueeze(1)                  # dt * B * u
        if state is None:  # zero state (official): exp(dt A) * 0 contributes nothing, but keep A_log in the graph
            state = torch.zeros_like(new_state)
        new_state = torch.addcmul(new_state, torch.exp(dt.unsqueeze(-1) * A), state)
        y = torch.matmul(new_state, Cm.unsqueeze(-1)).squeeze(-1) + u * self.D.to(u.dtype)
        y = y * F.silu(z)
        y = self.norm2(y + self.linear2(F.relu(self.linear1(y))))
        out = self.normal_bboxes(y)
        return (torch.sigmoid(out) if self.output_sigmoid else out), new_state


class FlowSSMDecoder(nn.Module):
    """Cascade of heads; ``forward`` returns every head's box (the last one is the prediction)."""

    def __init__(self, n_heads: int = 6, **head_kwargs) -> None:
        super().__init__()
        self.head_series = nn.ModuleList(FlowSSMHead(**head_kwargs) for _ in range(n_heads))

    def forward(self, box: Tensor, flow: Tensor) -> list[Tensor]:
        boxes: list[Tensor] = []
        state: Tensor | None = None
        for head in self.head_series:
            pred, state = head(box, flow, state)
            boxes.append(pred)
            box, state = pred.detach(), state.detach()
        return boxes

    def set_output_sigmoid(self, value: bool) -> None:
        for head in self.head_series:
            head.output_sigmoid = value
