"""TrackSSM model: official key set and sizes, class conditioning, checkpoints, loss, parity with mamba-ssm."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from trackssm_lib.model import (
    CheckpointError,
    TrackSSM,
    count_parameters,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    save_official_checkpoint,
)
from trackssm_lib.model.checkpoint import PROJECT_FORMAT
from trackssm_lib.model.mamba import MambaMixer, selective_scan, selective_scan_plain


def official_shapes() -> dict[str, tuple[int, ...]]:
    """The official TrackSSM key -> shape list, written out from its pattern (REFERENCE.md section 2)."""
    shapes: dict[str, tuple[int, ...]] = {"encoder.mamba_net.embedding.weight": (8, 256)}
    for i in range(6):
        p = f"encoder.mamba_net.layers.{i}."
        shapes.update({
            p + "mixer.A_log": (512, 16), p + "mixer.D": (512,), p + "mixer.in_proj.weight": (1024, 256),
            p + "mixer.conv1d.weight": (512, 1, 4), p + "mixer.conv1d.bias": (512,),
            p + "mixer.x_proj.weight": (48, 512), p + "mixer.dt_proj.weight": (512, 16),
            p + "mixer.dt_proj.bias": (512,), p + "mixer.out_proj.weight": (256, 512), p + "norm.weight": (256,),
        })
    shapes["encoder.mamba_net.norm_f.weight"] = (256,)
    for i in range(6):
        p = f"ssm_decoder.head_series.{i}."
        shapes.update({
            p + "A_log": (256, 16), p + "D": (256,), p + "in_proj.weight": (512, 256), p + "x_proj.weight": (48, 256),
            p + "dt_proj.weight": (256, 16), p + "dt_proj.bias": (256,), p + "linear1.weight": (512, 256),
            p + "linear1.bias": (512,), p + "linear2.weight": (256, 512), p + "linear2.bias": (256,),
            p + "norm2.weight": (256,), p + "norm2.bias": (256,), p + "normal_bboxes.weight": (4, 256),
            p + "normal_bboxes.bias": (4,),
        })
    return shapes


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches gain nothing from intra-op threads, and on a busy 2-core machine they stall: use 1."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model() -> TrackSSM:
    torch.manual_seed(0)
    return TrackSSM(backend="torch").eval()


def make_condition(batch: int = 6, seed: int = 1) -> torch.Tensor:
    """A plausible normalised history: 6 boxes b0..b5 drifting slowly -> rows [b1..b5 | b1-b0..b5-b4]."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(batch, 1, 4, generator=g) * 0.5 + 0.2
    steps = torch.randn(batch, 6, 4, generator=g) * 0.01
    boxes = start + steps.cumsum(1)
    return torch.cat([boxes[:, 1:], boxes[:, 1:] - boxes[:, :-1]], dim=-1)


# ------------------------------------------------------------------------------------------ keys and sizes
def test_state_dict_matches_official_plus_class_params(model):
    expected = official_shapes()
    assert len(expected) == 146
    assert sum(map(numel, expected.values())) == 5_129_496
    sd = model.state_dict()
    official = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith("class_embedding.")}
    extra = {k: tuple(v.shape) for k, v in sd.items() if k.startswith("class_embedding.")}
    assert official == expected
    assert extra == {"class_embedding.weight": (7, 256)}
    assert count_parameters(model, "encoder.") == 2_630_400
    assert count_parameters(model, "ssm_decoder.") == 2_499_096
    assert count_parameters(model) == 5_129_496 + 7 * 256
    assert list(model.official_state_dict()) == [k for k in sd if k in expected]


# ------------------------------------------------------------------------------------------ class conditioning
def test_class_params_start_neutral_then_matter():
    torch.manual_seed(0)
    m = TrackSSM(backend="torch").eval()
    cond = make_condition(7)
    ids_a = torch.arange(7)
    ids_b = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    with torch.no_grad():
        base = m(cond)
        assert torch.equal(m(cond, ids_a), base)
        assert torch.equal(m(cond, ids_b), base)
        m.class_embedding.weight.normal_(0, 0.5)
        out_a, out_b = m(cond, ids_a), m(cond, ids_b)
    assert not torch.allclose(out_a, base, atol=1e-6)
    assert not torch.allclose(out_a, out_b, atol=1e-6)
    assert torch.equal(m(cond), base)  # no class ids -> the official function


def test_class_ids_validated(model):
    with pytest.raises(ValueError, match="class ids"):
        model(make_condition(2), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="condition"):
        model(torch.zeros(2, 5, 4))


# ------------------------------------------------------------------------------------------ outputs and loss
def test_output_shape_and_sigmoid(model):
    cond = make_condition(5)
    out = model(cond)
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    heads = model.forward_heads(cond)
    assert len(heads) == 6 and torch.equal(heads[-1], out)
    sig = TrackSSM(output_sigmoid=True, backend="torch").eval()
    sig.load_state_dict(model.state_dict())
    with torch.no_grad():
        # head 0 sees the same input; later heads start from the (now sigmoided) previous box
        assert torch.allclose(sig.forward_heads(cond)[0], torch.sigmoid(model.forward_heads(cond)[0]), atol=1e-6)


def test_loss_scalar_with_gradients_everywhere():
    torch.manual_seed(0)
    m = TrackSSM(backend="torch").train()
    cond = make_condition(6)
    target = cond[:, -1, :4] + cond[:, -1, 4:]
    loss = m.loss(cond, torch.arange(6) % 7, target)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name != "ssm_decoder.head_series.0.A_log":  # head 0 starts from a zero state: no gradient for its A
            assert p.grad.abs().sum() > 0, name


def test_loss_is_official_progressive_smooth_l1(model):
    cond = make_condition(4)
    target = torch.rand(4, 4)
    with torch.no_grad():
        heads = model.forward_heads(cond)
        x0 = cond[:, -1, :4]
        expected = sum(torch.nn.functional.smooth_l1_loss(h, x0 + (i + 1) * (target - x0) / 6)
                       for i, h in enumerate(heads))
        assert torch.allclose(model.loss(cond, None, target), expected, atol=1e-6)


def next_box_case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded inputs: histories (3, 6, 4) and the box after them (3, 4)."""
    g = torch.Generator().manual_seed(seed)
    hist = 0.4 + 0.01 * torch.arange(6, dtype=torch.float32)[None, :, None] + 0.05 * torch.rand(3, 6, 4, generator=g)
    return hist, hist[:, -1] + 0.01


def hand_condition(window: torch.Tensor) -> torch.Tensor:
    """The model input of 6 boxes, by hand: the last 5 boxes and their differences, (B, 5, 8)."""
    return torch.cat([window[:, 1:], window[:, 1:] - window[:, :-1]], dim=-1)


def test_generalized_iou_values():
    """Hand-computed GIoU (corners -> centre/size), the IoU it reduces to when one box holds the other, symmetry,
    independence of the image scale (normalised coordinates), and a clear error on mismatched shapes."""
    from trackssm_lib.boxes import paired_iou
    from trackssm_lib.model.box_loss import generalized_iou
    from trackssm_lib.boxes import cxcywh_to_xyxy

    def cxcywh(x1, y1, x2, y2):
        return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]

    a = torch.tensor([cxcywh(0, 0, 2, 2), cxcywh(0, 0, 2, 2), cxcywh(0, 0, 2, 2), cxcywh(0, 0, 4, 4)],
                     dtype=torch.float64)
    b = torch.tensor([cxcywh(0, 0, 2, 2), cxcywh(3, 0, 5, 2), cxcywh(1, 1, 3, 3), cxcywh(1, 1, 2, 3)],
                     dtype=torch.float64)
    expected = torch.tensor([1.0, -(10 - 8) / 10, 1 / 7 - (9 - 7) / 9, 2 / 16], dtype=torch.float64)
    assert torch.allclose(generalized_iou(a, b), expected, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    outer = torch.cat([0.5 + 0.2 * torch.rand(50, 2, generator=g), 0.2 + 0.2 * torch.rand(50, 2, generator=g)], 1)
    inner = torch.cat([outer[:, :2] + 0.05 * (torch.rand(50, 2, generator=g) - 0.5),
                       outer[:, 2:] * (0.3 + 0.4 * torch.rand(50, 2, generator=g))], 1).double()
    outer = outer.double()

    def iou(a, b):
        return paired_iou(cxcywh_to_xyxy(a.numpy()), cxcywh_to_xyxy(b.numpy()))

    np.testing.assert_allclose(generalized_iou(outer, inner).numpy(), iou(outer, inner), atol=1e-9)
    rand_a = torch.rand(50, 4, generator=g, dtype=torch.float64) * torch.tensor([1, 1, 0.3, 0.3])
    rand_b = torch.rand(50, 4, generator=g, dtype=torch.float64) * torch.tensor([1, 1, 0.3, 0.3])
    giou = generalized_iou(rand_a, rand_b)
    assert torch.allclose(giou, generalized_iou(rand_b, rand_a))
    assert (giou <= torch.from_numpy(iou(rand_a, rand_b)) + 1e-12).all() and (giou >= -1).all()
    scale = torch.tensor([1600.0, 900.0, 1600.0, 900.0], dtype=torch.float64)
    assert torch.allclose(generalized_iou(rand_a * scale, rand_b * scale), giou, atol=1e-9)
    with pytest.raises(ValueError, match="generalized_iou wants two"):
        generalized_iou(rand_a, rand_b[:, :3])


def test_giou_loss_term(model):
    """giou_weight = 0 is the official loss; w > 0 adds w * sum over heads of mean(1 - GIoU(head, its progressive
    target)); the term has gradients."""
    from trackssm_lib.model.box_loss import generalized_iou

    hist, target = next_box_case(5)
    cond = hand_condition(hist)
    with torch.no_grad():
        official = model.loss(cond, None, target)
        assert torch.equal(model.loss(cond, None, target, giou_weight=0.0), official)
        x0 = cond[:, -1, :4]
        term = sum((1 - generalized_iou(h, x0 + (i + 1) * (target - x0) / 6)).mean()
                   for i, h in enumerate(model.forward_heads(cond)))
        assert term > 0
        assert torch.allclose(model.loss(cond, None, target, giou_weight=0.5), official + 0.5 * term, atol=1e-6)
    m = TrackSSM(backend="torch").train()
    m.load_state_dict(model.state_dict())
    m.loss(cond, None, target, giou_weight=1.0).backward()
    assert m.ssm_decoder.head_series[-1].normal_bboxes.weight.grad.abs().sum() > 0


def scan_args(B: int, L: int, D: int, N: int, seed: int) -> tuple[list[torch.Tensor], torch.Generator]:
    """Seeded float64 selective-scan inputs (u, delta, A, B, C) that require gradients, and the generator."""
    g = torch.Generator().manual_seed(seed)
    args = [torch.randn(B, L, D, generator=g, dtype=torch.float64), torch.rand(B, L, D, generator=g,
            dtype=torch.float64), -torch.rand(D, N, generator=g, dtype=torch.float64),
            torch.randn(B, L, N, generator=g, dtype=torch.float64),
            torch.randn(B, L, N, generator=g, dtype=torch.float64)]
    return [a.requires_grad_() for a in args], g


def test_custom_scan_gradient():
    B, L, D, N = 2, 5, 3, 4
    args, _ = scan_args(B, L, D, N, seed=0)
    assert torch.autograd.gradcheck(selective_scan, args)
    assert torch.allclose(selective_scan(*args), selective_scan_plain(*args))


def test_custom_scan_chunked_equals_plain(monkeypatch):
    """The batch-chunked path (several chunks, uneven last one) gives the plain autograd values and gradients."""
    from trackssm_lib.model import mamba

    monkeypatch.setattr(mamba, "SCAN_CHUNK_ELEMENTS", 2 * 5 * 4 * 3)  # 2 samples per chunk
    B, L, D, N = 5, 5, 3, 4
    args, g = scan_args(B, L, D, N, seed=1)
    assert len(mamba._chunks(B, L * D * N)) == 3
    y, y_ref = selective_scan(*args), selective_scan_plain(*args)
    assert torch.allclose(y, y_ref)
    gy = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(y, args, gy), torch.autograd.grad(y_ref, args, gy)):
        assert torch.allclose(a, b)


# ------------------------------------------------------------------------------------------ checkpoints
def test_relative_box_coder():
    """The relative coder decodes each head's output as a size-relative change of its input box (hand-computed);
    zeroed output layers predict the last box; same parameters as the official model; bad combinations refused."""
    from trackssm_lib.model.decoder import MAX_LOG_SCALE, decode_relative

    box = torch.tensor([[0.5, 0.4, 0.1, 0.2], [0.2, 0.3, 0.01, 0.03], [0.2, 0.3, 0.01, 0.03]])
    delta = torch.tensor([[0.5, -1.0, np.log(2.0), 0.0], [0.0, 2.0, -np.log(4.0), 100.0],
                          [0.0, 0.0, -100.0, 0.0]], dtype=torch.float32)
    # sizes change by at most 1000 / 16 either way in one step (the detectors' clamp)
    expected = torch.tensor([[0.55, 0.2, 0.2, 0.2], [0.2, 0.36, 0.0025, 0.03 * 1000 / 16],
                             [0.2, 0.3, 0.01 * 16 / 1000, 0.03]])
    assert torch.allclose(decode_relative(box, delta), expected, atol=1e-6)
    assert np.isclose(MAX_LOG_SCALE, np.log(62.5))

    torch.manual_seed(0)
    rel = TrackSSM(backend="torch", box_coder="relative").eval()
    assert rel.box_coder == "relative" and rel.config["box_coder"] == "relative"
    assert {k: v.shape for k, v in rel.official_state_dict().items()} == official_shapes()
    cond = make_condition(5)
    with torch.no_grad():
        heads = rel.forward_heads(cond)
        rel.ssm_decoder.zero_box_outputs()
        for head in rel.forward_heads(cond):
            assert torch.equal(head, cond[:, -1, :4])
    assert not torch.equal(heads[0], cond[:, -1, :4]) and torch.isfinite(torch.stack(heads)).all()
    # sizes stay positive whatever the outputs: the relative coder cannot produce a negative width
    assert (torch.stack(heads)[..., 2:] > 0).all()
    with pytest.raises(ValueError, match="box_coder must be one of"):
        TrackSSM(box_coder="delta")
    with pytest.raises(ValueError, match="cannot be combined with box_coder='relative'"):
        TrackSSM(box_coder="relative", output_sigmoid=True)
    with pytest.raises(ValueError, match="cannot be combined with box_coder='relative'"):
        TrackSSM(box_coder="relative").output_sigmoid = True


def test_relative_head_outputs_decode_against_hand_computation():
    """Head i's box is decode_relative(head i-1's box, head i's raw output), head 0 starting from the last box:
    recomputed by hand from the layers."""
    from trackssm_lib.model.decoder import decode_relative

    torch.manual_seed(1)
    rel = TrackSSM(backend="torch", box_coder="relative").eval()
    absolute = TrackSSM(backend="torch").eval()
    absolute.load_state_dict(rel.state_dict())
    cond = make_condition(4)
    with torch.no_grad():
        flow = rel.flow_feature(cond)
        box, state = cond[:, -1, :4], None
        for raw_head, got in zip(absolute.ssm_decoder.head_series, rel.forward_heads(cond)):
            raw, state = raw_head(box, flow, state)  # the same head's weights, its output taken as it is
            assert torch.allclose(got, decode_relative(box, raw), atol=1e-6)
            box = got


def test_removed_history_option_in_old_checkpoints(tmp_path):
    """Project files written while ``history`` was an option store ``"history": 5`` (the shipped zoo weights among
    them): they load strictly as before, the key dropped; any other stored value is refused, naming the file and the
    last commit that has the option. New files no longer store it, and the model no longer takes it."""
    torch.manual_seed(3)
    model = TrackSSM(backend="torch").eval()
    assert "history" not in model.config
    new = save_checkpoint(tmp_path / "new.pth", model)
    assert "history" not in torch.load(new, weights_only=True)["config"]
    cond = make_condition(3)
    for value, name in ((5, "old5.pth"), (10, "old10.pth")):
        obj = torch.load(new, weights_only=True)
        obj["config"]["history"] = value
        torch.save(obj, tmp_path / name)
    assert "history" not in read_checkpoint(tmp_path / "old5.pth").config
    loaded = load_checkpoint(tmp_path / "old5.pth", backend="torch").eval()
    assert "history" not in loaded.config
    with torch.no_grad():
        assert torch.equal(loaded(cond), model(cond))
    load_checkpoint(tmp_path / "old5.pth", TrackSSM(backend="torch"))  # into a given model (resume, init)
    for given in (None, TrackSSM(backend="torch")):
        with pytest.raises(CheckpointError, match=r"old10\.pth: checkpoint trained with history=10; the project "
                                                  r"option 'history' was removed .* commit 192a296"):
            load_checkpoint(tmp_path / "old10.pth", given)
    with pytest.raises(TypeError):
        TrackSSM(history=5)


def test_box_coder_in_checkpoints(tmp_path, model, assert_box_outputs_reset):
    """The coder travels in project checkpoints; weights of one coder are refused by a model of another (the file
    is named) unless the output layers are explicitly reset; the official format refuses a relative model."""
    torch.manual_seed(2)
    rel = TrackSSM(backend="torch", box_coder="relative").eval()
    path = save_checkpoint(tmp_path / "rel.pth", rel)
    cond = make_condition(3)
    loaded = load_checkpoint(path, backend="torch").eval()
    assert loaded.box_coder == "relative" and not loaded.checkpoint_info["box_outputs_reset"]
    with torch.no_grad():
        assert torch.equal(loaded(cond), rel(cond))
    with pytest.raises(CheckpointError, match=r"rel\.pth: weights trained with box_coder='relative'"):
        load_checkpoint(path, TrackSSM(backend="torch"))
    with pytest.raises(CheckpointError, match=r"rel\.pth: cannot build TrackSSM .*box_coder must be one of"):
        load_checkpoint(path, box_coder="delta")
    with pytest.raises(CheckpointError, match="official format .* box_coder='relative'"):
        save_official_checkpoint(tmp_path / "official.pt", rel)
    # official weights (absolute) into a relative model: refused, or every weight but the output layers kept
    official = official_file(tmp_path, model.official_state_dict())
    with pytest.raises(CheckpointError, match=r"official\.pt: weights trained with box_coder='absolute'"):
        load_checkpoint(official, TrackSSM(backend="torch", box_coder="relative"))
    reset = load_checkpoint(official, TrackSSM(backend="torch", box_coder="relative"),
                            reset_box_outputs_on_coder_change=True).eval()
    assert reset.checkpoint_info["box_outputs_reset"]
    assert_box_outputs_reset(reset.official_state_dict(), model.official_state_dict())
    with torch.no_grad():
        assert torch.equal(reset(cond), cond[:, -1, :4])


def official_file(tmp_path, sd, name="official.pt"):
    path = tmp_path / name
    torch.save({"ddpm": {"module." + k: v for k, v in sd.items()}, "epoch": 160, "optimizer": {}}, path)
    return path


def test_delta_gain_is_a_reparametrisation(tmp_path, model):
    """set_delta_gain keeps the function, the state dict and the checkpoints; the embedding holds the displacement
    rows divided by the gain, and one Adam step moves their ordinary weights gain times further."""
    cond, ids = make_condition(8), torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    plain_sd = model.state_dict()
    gained = TrackSSM(backend="torch").set_delta_gain(50.0).eval()
    gained.load_state_dict(plain_sd)
    emb = "encoder.mamba_net.embedding.weight"
    held = gained.encoder.mamba_net.embedding.weight.detach()
    assert torch.allclose(held[:4], plain_sd[emb][:4]) and torch.allclose(held[4:] * 50, plain_sd[emb][4:])
    with torch.no_grad():  # equal up to the float32 rounding of the stored weights / gain (a few 1e-6 here)
        assert torch.allclose(gained(cond, ids), model(cond, ids), atol=2e-5)
    for key, value in gained.state_dict().items():
        assert torch.allclose(value, plain_sd[key], rtol=1e-6, atol=1e-9), key
    path = save_checkpoint(tmp_path / "gained.pt", gained)
    reloaded = load_checkpoint(path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(cond, ids), model(cond, ids), atol=1e-6)
    target = cond[:, -1, :4] + cond[:, -1, 4:]

    def first_adam_step(m: TrackSSM) -> torch.Tensor:
        before = m.state_dict()[emb].clone()
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        m.train()
        m.loss(cond, ids, target).backward()
        opt.step()
        return (m.state_dict()[emb] - before).abs()

    fresh = TrackSSM(backend="torch")
    fresh.load_state_dict(plain_sd)
    moved_plain, moved_gained = first_adam_step(fresh), first_adam_step(gained)
    ratio = moved_gained.sum(1) / moved_plain.sum(1)
    assert torch.allclose(ratio[:4], torch.ones(4), rtol=0.05) and torch.allclose(ratio[4:], torch.full((4,), 50.0),
                                                                                   rtol=0.05), ratio
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="input gain must be 8 finite numbers > 0"):
            TrackSSM(backend="torch").set_delta_gain(bad)


def test_official_checkpoint_round_trip(tmp_path, model):
    cond = make_condition(5)
    path = official_file(tmp_path, model.official_state_dict())
    fresh = TrackSSM(backend="torch", num_classes=7)
    loaded = load_checkpoint(path, model=fresh).eval()
    assert loaded is fresh and loaded.checkpoint_info["format"] == "official"
    assert not loaded.checkpoint_info["class_params_loaded"]
    assert torch.count_nonzero(loaded.class_embedding.weight) == 0
    with torch.no_grad():
        assert torch.equal(loaded(cond), model(cond))
        assert torch.equal(loaded(cond, torch.arange(5)), model(cond))
    # the writer for the official format reads back the same way
    path2 = save_official_checkpoint(tmp_path / "official2.pt", model, epoch=3)
    raw = torch.load(path2, weights_only=True)
    assert set(raw) == {"ddpm", "epoch", "optimizer"} and all(k.startswith("module.") for k in raw["ddpm"])
    assert len(raw["ddpm"]) == 146
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path2, backend="torch").eval()(cond), model(cond))


def test_project_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    m = TrackSSM(backend="torch", output_sigmoid=True).eval()
    with torch.no_grad():
        m.class_embedding.weight.normal_()
    path = save_checkpoint(tmp_path / "sub" / "model.pt", m, epoch=5, note="x")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == PROJECT_FORMAT and raw["extra"] == {"epoch": 5, "note": "x"}
    loaded = load_checkpoint(path).eval()
    assert loaded.output_sigmoid and loaded.checkpoint_info["class_params_loaded"]
    cond, ids = make_condition(4), torch.tensor([0, 1, 2, 6])
    with torch.no_grad():
        assert torch.equal(loaded(cond, ids), m(cond, ids))
    # a project file must carry the class parameters
    del raw["model"]["class_embedding.weight"]
    torch.save(raw, tmp_path / "no_class.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: class_embedding\.weight \(7, 256\)"):
        load_checkpoint(tmp_path / "no_class.pt")


def test_renamed_key_is_refused(tmp_path, model):
    sd = dict(model.official_state_dict())
    sd["encoder.mamba_net.layers.3.mixer.x_proj.weightt"] = sd.pop("encoder.mamba_net.layers.3.mixer.x_proj.weight")
    path = official_file(tmp_path, sd, "renamed.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, model=TrackSSM(backend="torch"))
    msg = str(err.value)
    assert "renamed.pt" in msg
    assert "missing keys: encoder.mamba_net.layers.3.mixer.x_proj.weight (48, 512)" in msg
    assert "unexpected keys: encoder.mamba_net.layers.3.mixer.x_proj.weightt (48, 512)" in msg


def test_reshaped_tensor_is_refused(tmp_path, model):
    sd = dict(model.official_state_dict())
    sd["ssm_decoder.head_series.2.A_log"] = sd["ssm_decoder.head_series.2.A_log"].reshape(512, 8)
    path = official_file(tmp_path, sd, "reshaped.pt")
    with pytest.raises(CheckpointError, match=r"reshaped\.pt.*ssm_decoder\.head_series\.2\.A_log file \(512, 8\) "
                                              r"vs model \(256, 16\)"):
        load_checkpoint(path, model=TrackSSM(backend="torch"))


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, other)
    with pytest.raises(CheckpointError, match="other.pt.*not a TrackSSM checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError)


# ------------------------------------------------------------------------------------------ parity with mamba-ssm
@pytest.fixture()
def mamba_ssm_cpu(monkeypatch):
    """mamba-ssm's own modules on CPU: a stand-in for the missing compiled ``selective_scan_cuda`` (test-only)
    and ``selective_scan_fn`` pointed at mamba-ssm's ``selective_scan_ref``."""
    pytest.importorskip("einops", reason="mamba-ssm parity needs einops (installed with mamba-ssm)")
    if "selective_scan_cuda" not in sys.modules:
        try:
            import selective_scan_cuda  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    try:
        from mamba_ssm.modules import mamba_simple
        from mamba_ssm.ops import selective_scan_interface as ssi
    except ImportError as exc:
        pytest.skip(f"mamba_ssm not installed in this environment ({exc}); see the Makefile's mamba-ssm line")
    monkeypatch.setattr(mamba_simple, "selective_scan_fn", ssi.selective_scan_ref)
    monkeypatch.setattr(ssi, "selective_scan_fn", ssi.selective_scan_ref)
    return mamba_simple


def test_mixer_parity_with_mamba_ssm(mamba_ssm_cpu):
    """Our mixer vs mamba-ssm's Mamba.forward (use_fast_path=False -> selective_scan_ref), float64 modules.

    selective_scan_ref casts the scan to float32 internally, hence a 1e-5 tolerance rather than float64 rounding.
    """
    torch.manual_seed(0)
    ref = mamba_ssm_cpu.Mamba(d_model=256, d_state=16, d_conv=4, expand=2, dt_rank=16, conv_bias=True, bias=False,
                              use_fast_path=False).double()
    ours = MambaMixer(256, d_state=16, d_conv=4, expand=2, dt_rank=16, backend="torch").double()
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(8, 5, 256, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_out = torch.randn(8, 5, 256, dtype=torch.float64)
    y_ref, y_ours = ref(x_ref), ours(x_ours)
    (y_ref * grad_out).sum().backward()
    (y_ours * grad_out).sum().backward()
    assert (y_ref - y_ours).abs().max() < 1e-5
    assert (x_ref.grad - x_ours.grad).abs().max() < 1e-5
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert (ref_params[name].grad - p.grad).abs().max() < 1e-5, name


def test_model_backends_agree(mamba_ssm_cpu, model):
    """The whole model through our mamba_ssm glue (mamba-ssm ops, reference scan on CPU) equals the torch path."""
    m = TrackSSM(backend="torch").eval()
    m.load_state_dict(model.state_dict())
    cond = make_condition(4)
    with torch.no_grad():
        out_torch = m(cond)
        out_mamba = m.set_backend("mamba_ssm")(cond)
    assert (out_torch - out_mamba).abs().max() < 1e-5
    assert set(m.state_dict()) == set(model.state_dict())
