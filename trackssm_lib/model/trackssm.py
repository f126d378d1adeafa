"""TrackSSM (Mamba encoder + Flow-SSM decoder) with optional nuScenes class (and camera) conditioning.

The official parameters keep their official names (``encoder.mamba_net.*``, ``ssm_decoder.head_series.*``) so an
official checkpoint loads strictly. The addition is ``class_embedding.weight`` (num_classes, d_model): a
per-class vector added to the encoder's flow feature. It is initialised to zeros, so until it is trained the model
computes exactly the official function whatever the class ids.

A project option, ``num_cameras`` > 0, adds ``camera_embedding.weight`` (num_cameras + 1, d_model) the same way: the
image motion of an object depends strongly on which camera sees it (the ego's forward motion expands the front
view, contracts the back one and sweeps the side ones), and a track seen for one or two frames has no velocity of
its own yet. The camera then travels in the class ids: ``id = class + num_classes x slot`` with ``slot`` = camera
index + 1 (:meth:`TrackSSM.condition_ids`), slot 0 meaning "camera unknown" (its vector stays zero, so ids below
``num_classes`` give the camera-agnostic function).

A second project option, ``ego_aware``, adds ``ego_encoder.*``: a small MLP whose output is added to the flow feature
too. It reads the camera's own motion into the predicted frame (its twist: translation in metres and rotation vector
in radians, in the previous frame's camera coordinates; :func:`trackssm_lib.ego_motion.camera_twists`), the track's
last history row (position, log size, size-relative displacement) and its class. A static object's image motion
follows from the camera's motion and the object's depth, which its box and class tell; the ego moves at 0-12 m/s
and stops and starts, so without it a young track's motion can only be guessed. The MLP's last layer starts at
zero, so until trained the model computes the function it had without it. The ego motion is an input of every call
(``ego (B, 6)``; None means "no camera motion").
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackssm_lib.ego_motion import EGO_DIMS  # camera translation (m) and rotation vector (rad) into the frame
from trackssm_lib.model.box_loss import generalized_iou
from trackssm_lib.model.decoder import FlowSSMDecoder
from trackssm_lib.model.mamba import BACKENDS, MambaBlock, RMSNorm

CLASS_PREFIX = "class_embedding."
CAMERA_PREFIX = "camera_embedding."
EGO_PREFIX = "ego_encoder."
EGO_SCALE = (1.0, 1.0, 1.0, 20.0, 20.0, 20.0)  # rotation per 12 Hz frame is about 20 times smaller than translation


def fold_camera(class_ids: Tensor, camera_slots: Tensor, num_classes: int) -> Tensor:
    """The ids a camera-aware model reads: ``class + num_classes x slot`` (slot = camera index + 1, 0 = unknown)."""
    return class_ids + num_classes * camera_slots.to(class_ids.device, class_ids.dtype)


class MambaNet(nn.Module):
    """Encoder body: linear embedding of the 8-dim rows, 6 pre-norm Mamba blocks, final RMSNorm, last step."""

    def __init__(self, d_input: int = 8, d_model: int = 256, n_layers: int = 6, norm_eps: float = 1e-5,
                 **mixer_kwargs: Any) -> None:
        super().__init__()
        # nn.Embedding used as a bias-free linear map (official: bmm(condition, embedding.weight))
        self.embedding = nn.Embedding(d_input, d_model)
        self.layers = nn.ModuleList(MambaBlock(d_model, norm_eps=norm_eps, **mixer_kwargs) for _ in range(n_layers))
        self.norm_f = RMSNorm(d_model, eps=norm_eps)
        self._init_official(n_layers)
        # per-column input gains (set_input_gain): a training reparametrisation, never saved
        self.register_buffer("input_gain", torch.ones(d_input), persistent=False)
        self._gained = False
        self.register_state_dict_post_hook(_fold_input_gain)
        self.register_load_state_dict_pre_hook(_unfold_input_gain)

    def set_input_gain(self, gain: Sequence[float] | Tensor) -> None:
        """Feed column j of the input as ``gain[j] x`` it and hold embedding row j as ``1 / gain[j]`` times its value:
        the model computes the same function, but Adam, which moves every parameter by about the learning rate,
        changes row j ``gain[j]`` times faster. ``state_dict`` and ``load_state_dict`` always use the ordinary
        weights (gain folded in), so checkpoints do not depend on the gain."""
        new = torch.as_tensor(gain, dtype=self.input_gain.dtype, device=self.input_gain.device).reshape(-1)
        if new.shape != self.input_gain.shape or not bool(torch.all(torch.isfinite(new) & (new > 0))):
            raise ValueError(f"input gain must be {self.input_gain.numel()} finite numbers > 0, got {gain}")
        with torch.no_grad():
            weight = self.embedding.weight
            weight.copy_(weight * (self.input_gain / new).to(weight.dtype)[:, None])
            self.input_gain.copy_(new)
        self._gained = bool(torch.any(new != 1))

    def _init_official(self, n_layers: int) -> None:
        """mamba-ssm's MixerModel init: embedding N(0, 0.02), Linear biases 0 (not dt_proj), out_proj / sqrt(L)."""
        nn.init.normal_(self.embedding.weight, std=0.02)
        for module in self.modules():
            bias = module.bias if isinstance(module, nn.Linear) else None
            if bias is not None and not getattr(bias, "_no_reinit", False):
                nn.init.zeros_(bias)
        for layer in self.layers:
            weight = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            with torch.no_grad():
                weight /= math.sqrt(n_layers)

    def forward(self, condition: Tensor) -> Tensor:
        """(B, L, 8) -> (B, d_model): normalised feature of the last step."""
        if self._gained:
            condition = condition * self.input_gain.to(condition.dtype)
        hidden = torch.matmul(condition, self.embedding.weight)
        residual: Tensor | None = None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # only the last step of the last layer's output is used: skip the rest of its output projection
            hidden, residual = layer(hidden, residual, last_only=(i == last))
        residual = hidden + residual[:, -1:]
        return self.norm_f(residual)[:, 0]


def _fold_input_gain(module: MambaNet, state: dict[str, Tensor], prefix: str, _meta: Any) -> None:
    """state_dict hook: the ordinary embedding weights (row j times ``input_gain[j]``)."""
    key = prefix + "embedding.weight"
    if module._gained and key in state:
        state[key] = state[key] * module.input_gain.to(state[key].device, state[key].dtype)[:, None]


def _unfold_input_gain(module: MambaNet, state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """load_state_dict pre-hook: ordinary embedding weights -> the gained parametrisation."""
    key = prefix + "embedding.weight"
    if module._gained and key in state:
        state[key] = state[key] / module.input_gain.to(state[key].device, state[key].dtype)[:, None]


class Encoder(nn.Module):
    """Wrapper that reproduces the official key prefix ``encoder.mamba_net.``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.mamba_net = MambaNet(**kwargs)

    def forward(self, condition: Tensor) -> Tensor:
        return self.mamba_net(condition)


class EgoEncoder(nn.Module):
    """Flow-feature offset from the camera's motion, the track's last history row and its class (project option)."""

    def __init__(self, num_classes: int, d_model: int, hidden: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("scale", torch.tensor(EGO_SCALE), persistent=False)
        self.net = nn.Sequential(nn.Linear(EGO_DIMS + 8 + num_classes, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, d_model))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def features(self, ego: Tensor, last_row: Tensor, class_ids: Tensor | None) -> Tensor:
        """(B, 6 + 8 + num_classes) inputs: scaled twist; cx, cy, log w, log h and the displacement relative to the
        box size; the class one-hot (zeros without class ids)."""
        box, delta = last_row[:, :4], last_row[:, 4:8]
        size = box[:, 2:4].clamp(min=1e-4)
        row = torch.cat([box[:, :2], size.log(), delta[:, :2] / size, delta[:, 2:4] / size], dim=1)
        onehot = row.new_zeros(len(row), self.num_classes)
        if class_ids is not None:
            onehot[torch.arange(len(row), device=row.device), class_ids.to(row.device) % self.num_classes] = 1.0
        return torch.cat([ego.to(row.dtype) * self.scale.to(row.dtype), row, onehot], dim=1)

    def forward(self, ego: Tensor, last_row: Tensor, class_ids: Tensor | None) -> Tensor:
        return self.net(self.features(ego, last_row, class_ids))


class TrackSSM(nn.Module):
    """TrackSSM motion predictor.

    ``model(condition, class_ids=None)`` maps the official (B, 5, 8) normalised history
    ([b1..b5 | b1-b0..b5-b4], cx cy w h) to the next box (B, 4), absolute and normalised (the last head's output).
    ``model.loss(condition, class_ids, target)`` is the official training loss. ``box_coder="relative"`` (a project
    option with the same parameters; see :mod:`trackssm_lib.model.decoder`) makes each head output a size-relative
    change of its input box instead of the box; the default ``"absolute"`` is the official model.
    """

    def __init__(self, num_classes: int = 7, output_sigmoid: bool = False, backend: str = "auto",
                 d_model: int = 256, n_layers: int = 6, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int = 16, n_heads: int = 6, decoder_d_state: int = 16, decoder_dt_rank: int = 16,
                 d_ffn: int = 512, d_input: int = 8, box_coder: str = "absolute", num_cameras: int = 0,
                 ego_aware: bool = False) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(num_cameras, bool) or not isinstance(num_cameras, int) or num_cameras < 0:
            raise ValueError(f"num_cameras must be an integer >= 0, got {num_cameras!r}")
        if not isinstance(ego_aware, bool):
            raise ValueError(f"ego_aware must be True or False, got {ego_aware!r}")
        self.config: dict[str, Any] = dict(
            num_classes=num_classes, output_sigmoid=output_sigmoid, d_model=d_model, n_layers=n_layers,
            d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, n_heads=n_heads,
            decoder_d_state=decoder_d_state, decoder_dt_rank=decoder_dt_rank, d_ffn=d_ffn, d_input=d_input,
            box_coder=box_coder, num_cameras=num_cameras, ego_aware=ego_aware)
        self.num_classes = num_classes
        self.n_coords = d_input // 2
        self.encoder = Encoder(d_input=d_input, d_model=d_model, n_layers=n_layers, d_state=d_state, d_conv=d_conv,
                               expand=expand, dt_rank=dt_rank, conv_bias=True, bias=False, backend=backend)
        self.ssm_decoder = FlowSSMDecoder(n_heads=n_heads, d_model=d_model, d_state=decoder_d_state,
                                          dt_rank=decoder_dt_rank, d_ffn=d_ffn, n_coords=self.n_coords,
                                          output_sigmoid=output_sigmoid, box_coder=box_coder)
        # project addition (not in official checkpoints): zero-initialised per-class offset of the flow feature
        self.class_embedding = nn.Embedding(num_classes, d_model)
        nn.init.zeros_(self.class_embedding.weight)
        self.num_cameras = num_cameras
        if num_cameras:  # project option: zero-initialised per-camera offset; row 0 = camera unknown
            self.camera_embedding = nn.Embedding(num_cameras + 1, d_model)
            nn.init.zeros_(self.camera_embedding.weight)
        self.ego_aware = ego_aware
        if ego_aware:  # project option: flow offset from the camera's own motion (last layer zero)
            self.ego_encoder = EgoEncoder(num_classes, d_model)

    # ------------------------------------------------------------------ configuration
    @property
    def output_sigmoid(self) -> bool:
        return bool(self.config["output_sigmoid"])

    @output_sigmoid.setter
    def output_sigmoid(self, value: bool) -> None:
        self.config["output_sigmoid"] = bool(value)
        self.ssm_decoder.set_output_sigmoid(bool(value))

    @property
    def box_coder(self) -> str:
        """``absolute`` (official: heads output the box) or ``relative`` (heads output a size-relative change)."""
        return str(self.config["box_coder"])

    @property
    def backend(self) -> str:
        return self.encoder.mamba_net.layers[0].mixer.backend

    def set_backend(self, backend: str) -> "TrackSSM":
        """Switch every encoder mixer to ``auto``, ``torch`` or ``mamba_ssm`` (same parameters)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        for layer in self.encoder.mamba_net.layers:
            layer.mixer.backend = backend
        return self

    def set_delta_gain(self, gain: float) -> "TrackSSM":
        """Train the encoder's embedding rows of the 4 displacement columns ``gain`` times faster under Adam
        (:meth:`MambaNet.set_input_gain`; the function and the checkpoints stay the same). Those inputs are about
        1e-3 of the image per frame at 12 Hz, hundreds of times smaller than the positions, so at fine-tuning
        learning rates their weights barely grow and the encoder hardly sees the displacements."""
        self.encoder.mamba_net.set_input_gain([1.0] * self.n_coords + [float(gain)] * self.n_coords)
        return self

    def official_state_dict(self) -> dict[str, Tensor]:
        """The state_dict without the class, camera and ego parameters (exactly the official key set)."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith((CLASS_PREFIX, CAMERA_PREFIX, EGO_PREFIX))}

    def condition_ids(self, class_ids: Tensor, camera_slots: Tensor | None) -> Tensor:
        """Class ids with the camera folded in for a camera-aware model: ``class + num_classes x slot`` (slot =
        camera index + 1, 0 = unknown); a model without cameras, or no slots, gets the class ids unchanged."""
        if not self.num_cameras or camera_slots is None:
            return class_ids
        return fold_camera(class_ids, camera_slots, self.num_classes)

    # ------------------------------------------------------------------ computation
    def _check_inputs(self, condition: Tensor, class_ids: Tensor | None, ego: Tensor | None = None) -> Tensor:
        if condition.dim() != 3 or condition.shape[-1] != 2 * self.n_coords:
            raise ValueError(f"condition must be (B, L, {2 * self.n_coords}), got {tuple(condition.shape)}")
        if ego is not None and tuple(ego.shape) != (condition.shape[0], EGO_DIMS):
            raise ValueError(f"ego must be ({condition.shape[0]}, {EGO_DIMS}), got {tuple(ego.shape)}")
        if class_ids is not None:
            if class_ids.shape != condition.shape[:1]:
                raise ValueError(f"class_ids must be ({condition.shape[0]},), got {tuple(class_ids.shape)}")
            top = self.num_classes * (self.num_cameras + 1)
            if class_ids.numel() and (int(class_ids.min()) < 0 or int(class_ids.max()) >= top):
                raise ValueError(f"class ids must lie in [0, {top}), got "
                                 f"[{int(class_ids.min())}, {int(class_ids.max())}]")
        return condition.to(self.class_embedding.weight.dtype)

    def flow_feature(self, condition: Tensor, class_ids: Tensor | None = None, ego: Tensor | None = None) -> Tensor:
        """Encoder output (B, d_model), plus the class (and camera) offsets when class ids are given, and for an
        ego-aware model the ego offset (``ego`` None: no camera motion)."""
        flow = self.encoder(condition)
        ids = None if class_ids is None else class_ids.to(device=flow.device, dtype=torch.long)
        if ids is not None:
            flow = flow + self.class_embedding(ids % self.num_classes)
            if self.num_cameras:
                flow = flow + self.camera_embedding(ids // self.num_classes)
        if self.ego_aware:
            ego = condition.new_zeros(len(condition), EGO_DIMS) if ego is None else ego.to(condition.device)
            flow = flow + self.ego_encoder(ego, condition[:, -1], ids).to(flow.dtype)
        return flow

    def forward_heads(self, condition: Tensor, class_ids: Tensor | None = None,
                      ego: Tensor | None = None) -> list[Tensor]:
        """Every head's absolute box, [(B, 4)] * n_heads; the cascade starts from the last history box."""
        condition = self._check_inputs(condition, class_ids, ego)
        flow = self.flow_feature(condition, class_ids, ego)
        return self.ssm_decoder(condition[:, -1, : self.n_coords], flow)

    def forward(self, condition: Tensor, class_ids: Tensor | None = None, ego: Tensor | None = None) -> Tensor:
        """Predicted next box (B, 4): the last head's output."""
        return self.forward_heads(condition, class_ids, ego)[-1]

    def loss(self, condition: Tensor, class_ids: Tensor | None, target: Tensor, giou_weight: float = 0.0,
             ego: Tensor | None = None) -> Tensor:
        """Official loss: smooth-L1 of head i to x0 + (i+1)(gt - x0)/n_heads, summed over heads, mean (scalar).

        ``giou_weight`` > 0 adds ``giou_weight * (1 - GIoU)`` of each head to the same progressive target, summed over
        heads, mean (the official SportsMOT setting uses weight 1; the MOT17 weights were trained without it).
        """
        boxes = self.forward_heads(condition, class_ids, ego)
        x0 = condition[:, -1, : self.n_coords].to(boxes[0].dtype)
        target = target.to(boxes[0].dtype).reshape(x0.shape)
        step = (target - x0) / len(boxes)
        head_targets = [x0 + (i + 1) * step for i in range(len(boxes))]
        per_element = sum(F.smooth_l1_loss(box, goal, reduction="none") for box, goal in zip(boxes, head_targets))
        total = per_element.mean()
        if giou_weight:
            per_box = sum(1.0 - generalized_iou(box, goal) for box, goal in zip(boxes, head_targets))
            total = total + giou_weight * per_box.mean()
        return total

    def predict(self, condition: Tensor, class_ids: Tensor | None = None, ego: Tensor | None = None) -> Tensor:
        """Inference helper: no grad, eval semantics restored afterwards."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(condition, class_ids, ego)
        finally:
            self.train(was_training)


def count_parameters(model: nn.Module, prefix: str = "") -> int:
    """Number of parameters whose name starts with ``prefix``."""
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


__all__ = ["TrackSSM", "CAMERA_PREFIX", "CLASS_PREFIX", "EGO_DIMS", "EGO_PREFIX", "count_parameters"]
