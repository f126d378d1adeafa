"""The training loss on tiny cases worked out by hand: every expected value below is a literal number (or a fraction)
computed on paper from REFERENCE.md section 2, not the loss formula written again.

Official loss: head i (0-based, of n) is pulled by smooth-L1 (beta 1: 0.5 d^2 below |d| = 1, |d| - 0.5 above) towards
the progressive target x0 + (i + 1)(gt - x0) / n, x0 the last history box; summed over heads, mean over the
(sample, coordinate) elements. Optional: ``giou_weight`` times the mean over samples of the sum over heads of
1 - GIoU(head box, its progressive target). The head boxes are set by hand (a model whose ``forward_heads`` returns
them), except in the end-to-end case, where a relative-coder model with zeroed output layers predicts x0 at every
head (documented in ``trackssm_lib.model.decoder``).
"""
from __future__ import annotations

import pytest
import torch

from trackssm_lib.model import TrackSSM
from trackssm_lib.model.box_loss import generalized_iou
from trackssm_lib.training import _LossModule

TINY = dict(d_model=16, n_layers=1, d_state=4, dt_rank=2, decoder_d_state=4, decoder_dt_rank=2, d_ffn=8,
            backend="torch")


def condition_ending_at(*x0: list[float]) -> torch.Tensor:
    """(B, 5, 8) histories whose last box is x0 (earlier rows and the deltas are filler the loss must not read)."""
    rows = torch.full((len(x0), 5, 8), 0.123, dtype=torch.float64)
    rows[:, -1, :4] = torch.tensor(x0, dtype=torch.float64)
    return rows


def model_with_heads(*heads: list[list[float]]) -> TrackSSM:
    """A model whose heads output the given boxes (one (B, 4) list per head)."""
    model = TrackSSM(n_heads=len(heads), **TINY).double()
    fixed = [torch.tensor(h, dtype=torch.float64) for h in heads]
    model.forward_heads = lambda condition, class_ids=None, ego=None: fixed
    return model


def loss(model: TrackSSM, x0: list[list[float]], gt: list[list[float]], giou_weight: float = 0.0) -> float:
    return float(model.loss(condition_ending_at(*x0), None, torch.tensor(gt, dtype=torch.float64), giou_weight))


# ------------------------------------------------------------------------------------------ smooth-L1, progressive
def test_two_heads_halfway_target():
    """x0 = (0.5, 0.5, 0.2, 0.2), gt = (0.6, 0.5, 0.2, 0.4): head 0's target is halfway, (0.55, 0.5, 0.2, 0.3); head 1's
    is gt. Head 0 on its target, head 1 still at x0: errors (0.1, 0, 0, 0.2) -> 0.5 (0.01 + 0.04) = 0.025 over 4
    elements -> 0.00625."""
    x0, gt = [[0.5, 0.5, 0.2, 0.2]], [[0.6, 0.5, 0.2, 0.4]]
    assert loss(model_with_heads([[0.55, 0.5, 0.2, 0.3]], x0), x0, gt) == pytest.approx(0.00625, abs=1e-12)
    # both heads at x0: head 0 errs by (0.05, 0, 0, 0.1), head 1 by (0.1, 0, 0, 0.2):
    # 0.5 (0.0025 + 0.01 + 0.01 + 0.04) / 4 = 0.0078125
    assert loss(model_with_heads(x0, x0), x0, gt) == pytest.approx(0.0078125, abs=1e-12)
    # both heads on gt: head 0 overshoots its halfway target by (0.05, 0, 0, 0.1): 0.5 (0.0025 + 0.01) / 4
    assert loss(model_with_heads(gt, gt), x0, gt) == pytest.approx(0.0015625, abs=1e-12)
    # on their own targets: zero
    assert loss(model_with_heads([[0.55, 0.5, 0.2, 0.3]], gt), x0, gt) == pytest.approx(0.0, abs=1e-12)


def test_six_heads_staying_at_the_last_box():
    """The official 6 heads all at x0 while gt moves cx from 0.3 to 0.9: targets 0.4, 0.5, ..., 0.9, errors 0.1 to 0.6:
    0.5 (0.01 + 0.04 + 0.09 + 0.16 + 0.25 + 0.36) = 0.455 for that element; a second sample with every head on its
    target adds nothing but halves the mean: 0.455 / 8 = 0.056875."""
    x0 = [[0.3, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]
    gt = [[0.9, 0.5, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]]
    on_target = [[0.1 + 0.1 * (i + 1), 0.1, 0.1, 0.1] for i in range(6)]
    heads = [[x0[0], on_target[i]] for i in range(6)]
    assert loss(model_with_heads(*heads), x0, gt) == pytest.approx(0.056875, abs=1e-12)
    assert loss(model_with_heads(*[[x0[0]] for _ in range(6)]), x0[:1], gt[:1]) == pytest.approx(0.11375, abs=1e-12)


def test_smooth_l1_linear_beyond_one():
    """Errors of 1 or more count |d| - 0.5: x0 = 0, gt = (4, 0, 0, 0), two heads at (0, 0, 0, 0) and (4, 0, 0, 0);
    head 0's target is (2, 0, 0, 0): 2 - 0.5 = 1.5, over 4 elements 0.375. Head 0 at (3.5, 0, 0, 0) instead:
    error 1.5 -> 1.0 -> 0.25; at (2.5, 0, 0, 0): error 0.5 -> 0.125 -> 0.03125."""
    x0, gt = [[0.0, 0.0, 0.0, 0.0]], [[4.0, 0.0, 0.0, 0.0]]
    assert loss(model_with_heads(x0, gt), x0, gt) == pytest.approx(0.375, abs=1e-12)
    assert loss(model_with_heads([[3.5, 0, 0, 0]], gt), x0, gt) == pytest.approx(0.25, abs=1e-12)
    assert loss(model_with_heads([[2.5, 0, 0, 0]], gt), x0, gt) == pytest.approx(0.03125, abs=1e-12)


def test_end_to_end_model_predicting_the_last_box():
    """A real forward pass: a relative-coder model with zeroed output layers predicts x0 at all 6 heads, so the loss
    is the 'staying' case above: 0.11375 for one moving coordinate (0.3 -> 0.9), whatever the filler history."""
    torch.manual_seed(0)
    model = TrackSSM(box_coder="relative", **TINY).double()
    model.ssm_decoder.zero_box_outputs()
    cond = condition_ending_at([0.3, 0.5, 0.2, 0.2])
    cond[:, :4, :] = torch.rand(4, 8, dtype=torch.float64)
    target = torch.tensor([[0.9, 0.5, 0.2, 0.2]], dtype=torch.float64)
    with torch.no_grad():
        assert float(model.loss(cond, None, target)) == pytest.approx(0.11375, abs=1e-12)
        assert float(model.loss(cond, None, cond[:, -1, :4])) == 0.0


# ------------------------------------------------------------------------------------------ GIoU
def test_generalized_iou_fractions():
    """Corners -> (cx, cy, w, h) by hand. [0,2]^2 vs [1,3]x[0,2]: intersection 2, union 6, hull 6 -> 1/3.
    [0,1]^2 vs [2,3]^2: 0 - (9 - 2)/9 = -7/9. [0,2]^2 vs [1,3]^2: 1/7 - (9 - 7)/9 = -5/63. [0,4]^2 holding [1,3]^2:
    4/16 = 1/4. Identical: 1. Touching edges, [0,1]^2 vs [1,2]x[0,1]: 0 - 0/2 = 0."""
    a = torch.tensor([[1, 1, 2, 2], [0.5, 0.5, 1, 1], [1, 1, 2, 2], [2, 2, 4, 4], [1, 1, 2, 2], [0.5, 0.5, 1, 1]],
                     dtype=torch.float64)
    b = torch.tensor([[2, 1, 2, 2], [2.5, 2.5, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2], [1, 1, 2, 2], [1.5, 0.5, 1, 1]],
                     dtype=torch.float64)
    expected = torch.tensor([1 / 3, -7 / 9, -5 / 63, 1 / 4, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(generalized_iou(a, b), expected, rtol=0, atol=1e-8)  # eps 1e-9 in its denominators


def test_giou_term_on_progressive_targets():
    """Two heads, two samples, giou_weight 0.5.
    Sample 0: x0 = (1, 1, 2, 2), gt = (3, 1, 2, 2): targets (2, 1, 2, 2) and gt. Head 0 at x0 errs by 1 in cx
    (smooth-L1 1 - 0.5 = 0.5) with GIoU 1/3 (above); head 1 on gt.
    Sample 1: x0 = gt = (0.5, 0.5, 1, 1): head 0 at (2.5, 2.5, 1, 1) errs by (2, 2, 0, 0) (1.5 + 1.5) with GIoU -7/9;
    head 1 on x0.
    smooth-L1: (0.5 + 3) / 8 = 0.4375. 1 - GIoU: sample 0 2/3, sample 1 16/9, mean 11/9. Total 0.4375 + 0.5 * 11/9."""
    x0 = [[1, 1, 2, 2], [0.5, 0.5, 1, 1]]
    gt = [[3, 1, 2, 2], [0.5, 0.5, 1, 1]]
    model = model_with_heads([[1, 1, 2, 2], [2.5, 2.5, 1, 1]], gt)
    assert loss(model, x0, gt) == pytest.approx(0.4375, abs=1e-12)
    assert loss(model, x0, gt, giou_weight=0.5) == pytest.approx(0.4375 + 0.5 * 11 / 9, abs=1e-8)
    assert loss(model, x0, gt, giou_weight=1.0) == pytest.approx(0.4375 + 11 / 9, abs=1e-8)


# ------------------------------------------------------------------------------------------ the training wrapper
def test_training_loss_module_applies_the_configured_giou_weight():
    """training._LossModule (what every training step and the validation loss call) gives the same literal values,
    with its giou_weight, and passes the ego motion on to the model."""
    x0 = [[1, 1, 2, 2], [0.5, 0.5, 1, 1]]
    gt = torch.tensor([[3, 1, 2, 2], [0.5, 0.5, 1, 1]], dtype=torch.float64)
    model = model_with_heads([[1, 1, 2, 2], [2.5, 2.5, 1, 1]], gt.tolist())
    cond = condition_ending_at(*x0)
    assert float(_LossModule(model)(cond, None, gt)) == pytest.approx(0.4375, abs=1e-12)
    assert float(_LossModule(model, giou_weight=0.5)(cond, None, gt)) == pytest.approx(0.4375 + 0.5 * 11 / 9, abs=1e-8)
    seen = []
    heads = model.forward_heads
    model.forward_heads = lambda condition, class_ids=None, ego=None: seen.append(ego) or heads(condition)
    ego = torch.ones(2, 6, dtype=torch.float64)
    _LossModule(model)(cond, None, gt, ego)
    assert seen[0] is ego
