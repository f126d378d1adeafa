"""The 7-class evaluation checked against independent references on non-trivial cases built here.

The project's :class:`trackssm_lib.evaluation.NuScenesMot2DBox` filters GT and results by class, keeps only the
protocol's timesteps (``keyframes``: ``is_key_frame == 1`` in ``frames.csv``; ``all``: every frame) and drops GT
rows whose consider flag (column 7) is 0. Two references:

- by hand, on a one-sequence case small enough to count (MOTA = (TP - FP - IDSW) / GT, IDF1 = IDTP / (IDTP +
  (IDFN + IDFP) / 2), HOTA = sqrt(DetA * AssA) with exact boxes, so equal at every alpha);
- TrackEval's own ``MotChallenge2DBox`` run once per class on copies written in MOTChallenge layout: only that
  class's rows, only the protocol's frames (renumbered 1..K), every row written as class 1 (pedestrian) so that its
  class filter and distractor preprocessing drop nothing; combined rows worked out from its per-class results
  (sums of counts; HOTA per alpha).

Cases: three sequences, six classes with data and one without, partial overlaps (IoU between 0.5 and 1 and one
below 0.5), a fragmented track, an identity switch and a swap of two identities, false positives (also of a class
with no GT), a prediction of the wrong class on a GT box, a class with GT and no prediction, GT rows not to be
considered, irregular keyframes.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.constants import CLASS_IDS, CLASS_NAMES
from trackssm_lib.evaluation import evaluate

CAR, TRUCK, BUS, TRAILER, PED, MOTO, BIKE = (CLASS_IDS[n] for n in
                                             ("car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle"))
PROTOCOLS = ("keyframes", "all")
TOL = 1e-9  # on the project's percentages (both sides compute the same sums: only rounding differs)


# ----------------------------------------------------------------------------------------------------------------
# Building cases
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One sequence: its length, keyframes (1-based), GT rows ``frame,id,x,y,w,h,consider,class,visibility`` and
    result rows ``frame,id,x,y,w,h,score,class``."""

    name: str
    length: int
    keyframes: tuple[int, ...]
    gt: list[tuple] = field(default_factory=list)
    results: list[tuple] = field(default_factory=list)


def moving_box(frames, x0: float, y0: float, w: float, h: float, vx: float = 0.0, vy: float = 0.0):
    """``{frame: (x, y, w, h)}`` of a box moving by (vx, vy) per frame from (x0, y0) at frame 1."""
    return {f: (x0 + vx * (f - 1), y0 + vy * (f - 1), w, h) for f in frames}


def add_gt(case: Case, track: int, cls: int, boxes: dict, ignored=()) -> dict:
    """GT rows of one track (consider flag 0 on the frames ``ignored``); returns ``boxes`` for predictions."""
    case.gt += [(f, track, *b, 0 if f in ignored else 1, cls, 1) for f, b in sorted(boxes.items())]
    return boxes


def add_pred(case: Case, track: int, cls: int, boxes: dict, frames, dx: float = 0.0, dy: float = 0.0) -> None:
    """Result rows of one predicted track: the boxes of ``boxes`` on ``frames``, shifted by (dx, dy)."""
    case.results += [(f, track, boxes[f][0] + dx, boxes[f][1] + dy, boxes[f][2], boxes[f][3], 1.0, cls)
                     for f in frames]


def mixed_cases() -> list[Case]:
    """Three sequences covering the cases of the module docstring (IoU of a shift d along a side s: (s-d)/(s+d))."""
    s1 = Case("s1", 14, (1, 3, 7, 8, 12, 14))
    car1 = add_gt(s1, 1, CAR, moving_box(range(1, 15), 100, 300, 80, 60, vx=6))
    car2 = add_gt(s1, 2, CAR, moving_box(range(2, 12), 600, 320, 90, 70, vx=-5))
    ped3 = add_gt(s1, 3, PED, moving_box(range(1, 10), 900, 400, 30, 80, vx=2))
    truck4 = add_gt(s1, 4, TRUCK, moving_box(range(4, 15), 1200, 250, 150, 120, vy=3))
    ped5 = add_gt(s1, 5, PED, moving_box(range(6, 14), 1000, 100, 40, 90, vx=-3), ignored=(10, 11, 12))
    add_pred(s1, 21, CAR, car1, range(1, 8), dx=8)          # IoU 0.82, then an identity switch to 22
    add_pred(s1, 22, CAR, car1, range(8, 15), dx=-4)        # IoU 0.90
    add_pred(s1, 23, CAR, car2, [2, 3, 4, 5, 9, 10, 11], dy=10)  # fragmented (IoU 0.75)
    add_pred(s1, 24, CAR, moving_box(range(3, 7), 50, 700, 60, 60), range(3, 7))  # false positives
    add_pred(s1, 25, PED, ped3, range(1, 6), dx=3)          # IoU 0.82
    add_pred(s1, 26, CAR, ped3, range(6, 10))               # the pedestrian's exact box, class car
    add_pred(s1, 27, TRUCK, truck4, range(4, 15), dx=60)    # IoU 0.43: a miss and a false positive for CLEAR
    add_pred(s1, 28, PED, ped5, range(6, 14), dy=-5)        # also on the frames its GT is not considered

    s2 = Case("s2", 10, (1, 4, 7, 10))
    ped1 = add_gt(s2, 1, PED, moving_box(range(1, 11), 300, 500, 40, 90, vx=8))
    ped2 = add_gt(s2, 2, PED, moving_box(range(1, 11), 420, 520, 40, 90, vx=-6))
    bike3 = add_gt(s2, 3, BIKE, moving_box(range(3, 9), 700, 600, 60, 50, vy=-4))
    car4 = add_gt(s2, 4, CAR, moving_box(range(1, 11), 1000, 300, 100, 70, vx=10))
    add_pred(s2, 31, PED, ped1, range(1, 6), dx=2)          # 31 and 32 swap their objects at frame 6
    add_pred(s2, 31, PED, ped2, range(6, 11), dx=-2)
    add_pred(s2, 32, PED, ped2, range(1, 6), dy=4)
    add_pred(s2, 32, PED, ped1, range(6, 11), dy=-4)
    add_pred(s2, 33, BIKE, bike3, range(3, 9))
    add_pred(s2, 34, BIKE, moving_box(range(4, 7), 50, 50, 60, 50), range(4, 7))  # false positives
    add_pred(s2, 35, CAR, car4, range(1, 11), dx=15)        # IoU 0.74
    add_pred(s2, 36, MOTO, moving_box(range(2, 5), 1400, 700, 50, 50), range(2, 5))  # a class without GT
    s2.results.sort(key=lambda r: (r[0], r[1]))

    s3 = Case("s3", 6, (1, 3, 6))
    add_gt(s3, 1, BUS, moving_box(range(1, 7), 200, 200, 300, 200, vx=4))  # never predicted
    car2 = add_gt(s3, 2, CAR, moving_box(range(1, 7), 800, 400, 120, 80, vx=-7))
    add_pred(s3, 7, CAR, car2, range(1, 7))
    return [s1, s2, s3]


def hand_case() -> Case:
    """One bus (frames 1..5, keyframes 1, 3, 5) tracked by 7 on frames 1-3 then by 8 on frames 4-5 (exact boxes);
    false positives 9 (frame 3, a keyframe) and 11 (frame 2, not a keyframe); 10: the bus's exact box on frame 5
    with class trailer."""
    case = Case("hand", 5, (1, 3, 5))
    bus = add_gt(case, 1, BUS, moving_box(range(1, 6), 100, 100, 200, 150, vx=10))
    add_pred(case, 7, BUS, bus, range(1, 4))
    add_pred(case, 8, BUS, bus, range(4, 6))
    add_pred(case, 9, BUS, moving_box([3], 900, 600, 50, 50), [3])
    add_pred(case, 10, TRAILER, bus, [5])
    add_pred(case, 11, BUS, moving_box([2], 900, 600, 50, 50), [2])
    case.results.sort(key=lambda r: (r[0], r[1]))
    return case


def write_project_layout(cases: list[Case], root: Path) -> tuple[Path, Path]:
    """``root/gt/<seq>/{gt/gt.txt, seqinfo.ini, frames.csv}`` and ``root/results/<seq>.txt`` as the export and the
    trackers write them; returns (gt folder, results folder)."""
    gt_dir, res_dir = root / "gt", root / "results"
    res_dir.mkdir(parents=True)
    for c in cases:
        seq = gt_dir / c.name
        (seq / "gt").mkdir(parents=True)
        (seq / "gt" / "gt.txt").write_text("".join(
            "%d,%d,%.3f,%.3f,%.3f,%.3f,%d,%d,%d,-1\n" % r for r in sorted(c.gt, key=lambda r: (r[0], r[1]))))
        (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={c.name}\nframeRate=12\nseqLength={c.length}\n"
                                         f"imWidth=1600\nimHeight=900\nimExt=.jpg\n")
        (seq / "frames.csv").write_text("frame,sample_data_token,timestamp_us,is_key_frame,filename\n" + "".join(
            f"{f},tok{f},{f * 83333},{int(f in c.keyframes)},img{f}.jpg\n" for f in range(1, c.length + 1)))
        (res_dir / f"{c.name}.txt").write_text("".join("%d,%d,%.3f,%.3f,%.3f,%.3f,%.2f,%d,-1,-1\n" % r
                                                       for r in c.results))
    return gt_dir, res_dir


# ----------------------------------------------------------------------------------------------------------------
# The TrackEval MotChallenge2DBox reference
# ----------------------------------------------------------------------------------------------------------------

def evaluated_frames(case: Case, protocol: str) -> list[int]:
    return list(case.keyframes) if protocol == "keyframes" else list(range(1, case.length + 1))


def write_mot_class_copy(cases: list[Case], protocol: str, cls: int, root: Path) -> tuple[dict[str, int], int]:
    """MOTChallenge copies of class ``cls`` under ``root``: ``gt/<seq>/gt/gt.txt`` and ``trackers/ref/<seq>.txt``
    holding only that class's rows on the protocol's frames, renumbered 1..K in order, every row as class 1 with
    visibility 1 (the consider flag kept). Returns ``({seq: K}, number of rows written)``."""
    lengths, n_rows = {}, 0
    for c in cases:
        frames = evaluated_frames(c, protocol)
        renumber = {f: k + 1 for k, f in enumerate(frames)}
        gt = [r for r in c.gt if r[7] == cls and r[0] in renumber]
        tr = [r for r in c.results if r[7] == cls and r[0] in renumber]
        (root / "gt" / c.name / "gt").mkdir(parents=True)
        (root / "gt" / c.name / "gt" / "gt.txt").write_text("".join(
            "%d,%d,%.3f,%.3f,%.3f,%.3f,%d,1,1\n" % (renumber[r[0]], *r[1:7]) for r in gt))
        (root / "trackers" / "ref").mkdir(parents=True, exist_ok=True)
        (root / "trackers" / "ref" / f"{c.name}.txt").write_text("".join(
            "%d,%d,%.3f,%.3f,%.3f,%.3f,%.2f,1,-1,-1\n" % (renumber[r[0]], *r[1:7]) for r in tr))
        lengths[c.name] = len(frames)
        n_rows += len(gt) + len(tr)
    return lengths, n_rows


def trackeval_mot_reference(cases: list[Case], protocol: str, cls: int, root: Path) -> dict | None:
    """TrackEval's ``MotChallenge2DBox`` (MOT17 rules, which drop nothing here) on the class copies of
    :func:`write_mot_class_copy`: ``{seq or "COMBINED_SEQ": {"HOTA": ..., "CLEAR": ..., "Identity": ...,
    "Count": ...}}``, or None when the class has no row to evaluate."""
    import trackeval

    lengths, n_rows = write_mot_class_copy(cases, protocol, cls, root)
    if n_rows == 0:
        return None
    config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    config.update({"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"),
                   "OUTPUT_FOLDER": str(root / "out"), "TRACKERS_TO_EVAL": ["ref"], "TRACKER_SUB_FOLDER": "",
                   "BENCHMARK": "MOT17", "SKIP_SPLIT_FOL": True, "SEQ_INFO": lengths, "PRINT_CONFIG": False})
    dataset = trackeval.datasets.MotChallenge2DBox(config)
    evaluator = trackeval.Evaluator({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                                     "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                                     "PLOT_CURVES": False, "BREAK_ON_ERROR": True, "LOG_ON_ERROR": None})
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False})]  # Count: added by the Evaluator
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        res, _ = evaluator.evaluate([dataset], metrics)
    return {seq: r["pedestrian"] for seq, r in res[dataset.get_name()]["ref"].items()}


def headline(res: dict) -> dict:
    """The compared values of one TrackEval result, as the project reports them (percentages, integer counts)."""
    clear, ident, count = res["CLEAR"], res["Identity"], res["Count"]
    return {"HOTA": 100 * float(np.mean(res["HOTA"]["HOTA"])), "DetA": 100 * float(np.mean(res["HOTA"]["DetA"])),
            "AssA": 100 * float(np.mean(res["HOTA"]["AssA"])), "MOTA": 100 * float(clear["MOTA"]),
            "IDF1": 100 * float(ident["IDF1"]), "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]),
            "FN": int(clear["CLR_FN"]), "TP": int(clear["CLR_TP"]), "Frag": int(clear["Frag"]),
            "IDTP": int(ident["IDTP"]), "GT_Dets": int(count["GT_Dets"]), "Dets": int(count["Dets"]),
            "GT_IDs": int(count["GT_IDs"]), "IDs": int(count["IDs"])}


def detection_weighted(per_class: dict[str, dict]) -> dict:
    """Classes combined by detections, from their TrackEval results: counts summed; MOTA, IDF1 from the sums;
    HOTA per alpha as sqrt(DetA * AssA) with DetA = TP / (TP + FN + FP) and AssA the TP-weighted mean of the
    classes' AssA, then averaged over the alphas."""
    h = [r["HOTA"] for r in per_class.values()]
    tp = sum(x["HOTA_TP"] for x in h)
    det_a = tp / np.maximum(1, tp + sum(x["HOTA_FN"] + x["HOTA_FP"] for x in h))
    ass_a = sum(x["AssA"] * x["HOTA_TP"] for x in h) / np.maximum(1, tp)
    c = {k: sum(int(r["CLEAR"][k]) for r in per_class.values()) for k in ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW")}
    i = {k: sum(int(r["Identity"][k]) for r in per_class.values()) for k in ("IDTP", "IDFN", "IDFP")}
    return {"HOTA": 100 * float(np.mean(np.sqrt(det_a * ass_a))),
            "MOTA": 100 * (c["CLR_TP"] - c["CLR_FP"] - c["IDSW"]) / max(1, c["CLR_TP"] + c["CLR_FN"]),
            "IDF1": 100 * i["IDTP"] / max(1.0, i["IDTP"] + 0.5 * (i["IDFN"] + i["IDFP"])),
            "IDSW": c["IDSW"], "FP": c["CLR_FP"], "FN": c["CLR_FN"]}


def assert_same(ours: dict, ref: dict, where: str) -> None:
    """Every key of ``ref`` equal in ``ours``: integers exactly, floats within ``TOL``."""
    for key, value in ref.items():
        if isinstance(value, int):
            assert ours[key] == value, f"{where} {key}: project {ours[key]}, reference {value}"
        else:
            assert ours[key] == pytest.approx(value, abs=TOL), f"{where} {key}: project {ours[key]}, reference {value}"


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_per_class_and_combined_metrics_match_trackeval_mot_per_class(tmp_path, protocol):
    cases = mixed_cases()
    gt_dir, res_dir = write_project_layout(cases, tmp_path / "project")
    out = evaluate(gt_dir, res_dir, None, protocol=protocol, print_summary=False)

    refs = {name: trackeval_mot_reference(cases, protocol, CLASS_IDS[name], tmp_path / "ref" / name)
            for name in CLASS_NAMES}
    with_data = [n for n in CLASS_NAMES if refs[n] is not None]
    assert with_data == ["car", "truck", "bus", "pedestrian", "motorcycle", "bicycle"]
    assert out["classes_with_data"] == with_data
    for name in CLASS_NAMES:
        ours = out["per_class"][name]
        if refs[name] is None:
            assert ours["GT_Dets"] == 0 and ours["Dets"] == 0, name
            continue
        assert_same(ours, headline(refs[name]["COMBINED_SEQ"]), f"{protocol} {name} combined")
        for c in cases:
            ref_seq = headline(refs[name][c.name])
            if ref_seq["GT_Dets"] or ref_seq["Dets"]:
                assert_same(out["per_sequence"][c.name][name], ref_seq, f"{protocol} {name} {c.name}")
            else:
                assert name not in out["per_sequence"][c.name], f"{protocol} {name} {c.name}: no data, reported"

    # the cases are what they claim: every kind of error occurs
    combined = {n: headline(refs[n]["COMBINED_SEQ"]) for n in with_data}
    assert combined["car"]["IDSW"] >= 1 and combined["pedestrian"]["IDSW"] >= 2 and combined["car"]["FP"] > 0
    assert combined["truck"]["TP"] == 0 and 0 < combined["truck"]["HOTA"] < 100  # IoU 0.43: HOTA's low alphas
    assert combined["bus"]["Dets"] == 0 and combined["motorcycle"]["GT_Dets"] == 0
    assert all(0 < combined[n]["HOTA"] < 100 for n in ("car", "pedestrian", "bicycle"))
    if protocol == "all":
        assert combined["car"]["Frag"] >= 1

    per_class_ref = {n: refs[n]["COMBINED_SEQ"] for n in with_data}
    assert_same(out["combined_det_avg"], detection_weighted(per_class_ref), f"{protocol} det avg")
    for row, n_classes in (("combined_class_avg", len(with_data)), ("combined_class_avg_all_classes", 7)):
        expected = {k: sum(combined[n][k] for n in with_data) / n_classes for k in ("HOTA", "MOTA", "IDF1")}
        assert_same(out[row], {**expected, "IDSW": sum(combined[n]["IDSW"] for n in with_data)}, f"{protocol} {row}")


# Hand counts of :func:`hand_case` (bus: GT 1; trailer: the one wrong-class box).
# keyframes 1, 3, 5: bus GT on 3 timesteps; 7 on frames 1, 3; 8 on frame 5; 9 on frame 3 -> TP 3, FP 1, IDSW 1,
#   IDTP 2 (1<->7), IDFN 1, IDFP 2; DetA 3/4, AssA (2 * 2/3 + 1 * 1/3) / 3 = 5/9.
# all frames: bus GT on 5; 7 on 1-3, 8 on 4-5, FPs 9 and 11 -> TP 5, FP 2, IDSW 1, IDTP 3, IDFN 2, IDFP 4;
#   DetA 5/7, AssA (3 * 3/5 + 2 * 2/5) / 5 = 13/25.
HAND = {
    "keyframes": {"bus": {"HOTA": 100 * np.sqrt(3 / 4 * 5 / 9), "MOTA": 100 * (3 - 1 - 1) / 3,
                          "IDF1": 100 * 2 / (2 + 0.5 * (1 + 2)), "IDSW": 1, "FP": 1, "FN": 0, "GT_Dets": 3},
                  "det_avg": {"MOTA": 100 * (3 - 2 - 1) / 3, "IDF1": 100 * 2 / (2 + 0.5 * (1 + 3)), "IDSW": 1,
                              "FP": 2, "FN": 0}},
    "all": {"bus": {"HOTA": 100 * np.sqrt(5 / 7 * 13 / 25), "MOTA": 100 * (5 - 2 - 1) / 5,
                    "IDF1": 100 * 3 / (3 + 0.5 * (2 + 4)), "IDSW": 1, "FP": 2, "FN": 0, "GT_Dets": 5},
            "det_avg": {"MOTA": 100 * (5 - 3 - 1) / 5, "IDF1": 100 * 3 / (3 + 0.5 * (2 + 5)), "IDSW": 1, "FP": 3,
                        "FN": 0}},
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hand_counted_case(tmp_path, protocol):
    """The wrong-class box on the bus is a trailer false positive (MOTA -100 %), never a bus match."""
    gt_dir, res_dir = write_project_layout([hand_case()], tmp_path)
    out = evaluate(gt_dir, res_dir, None, protocol=protocol, print_summary=False)
    assert out["classes_with_data"] == ["bus", "trailer"]
    assert_same(out["per_class"]["bus"], HAND[protocol]["bus"], f"{protocol} bus")
    assert_same(out["per_class"]["trailer"], {"HOTA": 0.0, "MOTA": -100.0, "IDF1": 0.0, "IDSW": 0, "FP": 1, "FN": 0,
                                              "GT_Dets": 0, "Dets": 1}, f"{protocol} trailer")
    assert_same(out["combined_det_avg"], HAND[protocol]["det_avg"], f"{protocol} det avg")
    assert out["timesteps"] == (3 if protocol == "keyframes" else 5)
