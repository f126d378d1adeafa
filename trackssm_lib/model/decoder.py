"""Flow-SSM decoder of TrackSSM: 6 cascaded heads, each one selective-SSM step that refines the box.

Each head embeds the current box (sine embedding), takes its SSM parameters (dt, B, C) from the encoder's
"flow" feature, advances the state carried from the previous head by one step, and regresses an ABSOLUTE box.
The next head starts from this head's detached box and state (official behaviour, so gradients stay per head).

``box_coder`` says how a head's 4 outputs become a box. ``"absolute"`` (official): they ARE the box (normalised
cx, cy, w, h). ``"relative"`` (a project option, same parameters): they are a change of the head's input box in
units of its own size, as detectors encode boxes: ``cx + w*d0, cy + h*d1, w*exp(d2), h*exp(d3)``. Then one
optimiser step means the same relative change for a box 1 % of the image wide as for one half the image wide,
and a zero output layer predicts "the box stays where it is".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BOX_CODERS = ("absolute", "relative")
# largest log size change (either way) a relative head may apply in one step (the detectors' clamp, log(1000 / 16))
MAX_LOG_SCALE = math.log(1000.0 / 16)


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
                 n_coords: int = 4, output_sigmoid: bool = False, box_coder: str = "absolute") -> None:
        super().__init__()
        check_box_coder(box_coder, output_sigmoid)
        self.box_coder = box_coder
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
        if self.box_coder != "absolute":
            return decode_relative(box, out), new_state
        return (torch.sigmoid(out) if self.output_sigmoid else out), new_state


def check_box_coder(box_coder: str, output_sigmoid: bool) -> None:
    """Refuse an unknown coder, and the sigmoid with a relative coder (its outputs are not boxes)."""
    if box_coder not in BOX_CODERS:
        raise ValueError(f"box_coder must be one of {BOX_CODERS}, got {box_coder!r}")
    if box_coder != "absolute" and output_sigmoid:
        raise ValueError("output_sigmoid applies to absolute box outputs only; it cannot be combined with "
                         f"box_coder={box_coder!r}")


def decode_relative(box: Tensor, delta: Tensor) -> Tensor:
    """Box (B, 4) cx cy w h moved by ``delta`` (B, 4) in units of its size: cx + w d0, cy + h d1, w e^d2, h e^d3."""
    size = box[:, 2:4]
    centre = box[:, 0:2] + size * delta[:, 0:2]
    return torch.cat([centre, size * torch.exp(delta[:, 2:4].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE))], dim=-1)


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
            check_box_coder(head.box_coder, value)
            head.output_sigmoid = value

    def zero_box_outputs(self) -> None:
        """Zero every head's output layer: with a relative coder the decoder then predicts its start box."""
        with torch.no_grad():
            for head in self.head_series:
                head.normal_bboxes.weight.zero_()
                head.normal_bboxes.bias.zero_()
