"""Model zoo: recipes run end to end and resume, shipped weights load strictly and match their sha256, bad input is
named."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trackssm_lib import zoo
from trackssm_lib.model import load_checkpoint, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "zoo_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny recipe run once from nothing (data, 3 stages, scoring on mini_val)."""
    out = tmp_path_factory.mktemp("zoo") / "tiny"
    record = zoo.train_recipe(str(TINY), out=out, progress=False)
    return out, record


def _mtimes(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((out / "stages").rglob("*.pth"))}


def test_train_writes_every_stage_and_the_record(tiny_run):
    out, record = tiny_run
    for stage in ("data", "phase0", "phase1", "phase2"):
        assert (out / "stages" / stage / "stage.json").is_file(), stage
    saved = json.loads((out / "zoo_record.json").read_text())
    assert saved["name"] == "zoo_tiny" and saved["track_args"] == ["--ego-compensation"]
    total = saved["results"]["mini_val"]["total"]
    assert set(total) == {"model", "kalman", "kalman-ego", "oracle"}
    cmp = saved["against"]["mini_val"]["kalman"]
    assert cmp["hota_gain"] == pytest.approx(total["model"]["HOTA"] - total["kalman"]["HOTA"])
    assert cmp["idsw_ratio"] == pytest.approx(total["model"]["IDSW"] / total["kalman"]["IDSW"])
    # the model row ran with the recipe's track flag, the plain Kalman row without it
    settings = json.loads((out / "eval" / "mini_val" / "noisy-seed-0" / "model" / "noisy" / "settings.json")
                          .read_text())["settings"]
    assert settings["ego_compensation"] is True and settings["checkpoint"].endswith("phase2_full_best.pth")
    kalman = json.loads((out / "eval" / "mini_val" / "noisy-seed-0" / "kalman" / "noisy" / "settings.json")
                        .read_text())["settings"]
    assert kalman["ego_compensation"] is False


def test_rerun_skips_finished_stages(tiny_run, capsys):
    out, record = tiny_run
    before = _mtimes(out)
    again = zoo.train_recipe(str(TINY), out=out, progress=False)
    assert _mtimes(out) == before  # no stage trained again
    assert again["results"] == record["results"]  # scoring read back from the finished runs
    log = (out / "zoo.log").read_text()
    assert log.count("stage phase2: finished earlier") >= 1


def test_killed_stage_resumes_to_the_uninterrupted_weights(tiny_run, tmp_path):
    """An interrupted phase-2 stage (one of its two epochs done, no stage.json) continues from its last
    checkpoint and ends with the weights of the uninterrupted run."""
    from trackssm_lib.training import train_main

    out, _ = tiny_run
    copy = tmp_path / "tiny"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("eval", "zoo.log"))
    shutil.rmtree(copy / "stages" / "phase2")
    recipe = zoo.load_recipe(str(TINY))
    stage = recipe["stages"][2]
    start = zoo.stage_weights(copy, recipe["stages"][1])
    overrides = zoo._stage_overrides(stage, copy / "stages" / "phase2", 0, start) + ["stop_after_epoch=1"]
    first = train_main(ROOT / stage["config"], copy / "export", overrides)
    assert first["last_epoch"] == 1 and not (copy / "stages" / "phase2" / "stage.json").exists()
    zoo.train_stages(recipe, copy)
    marker = json.loads((copy / "stages" / "phase2" / "stage.json").read_text())
    assert marker["summary"]["start"].startswith("resumed from") and marker["summary"]["last_epoch"] == 2
    resumed = read_checkpoint(zoo.stage_weights(copy, stage)).state_dict
    straight = read_checkpoint(zoo.stage_weights(out, stage)).state_dict
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_changed_recipe_is_refused_for_a_finished_stage(tiny_run, tmp_path):
    out, _ = tiny_run
    text = TINY.read_text().replace("epochs: 2, max_train_batches: 2", "epochs: 3, max_train_batches: 2")
    changed = tmp_path / "zoo_tiny.yaml"
    changed.write_text(text)
    with pytest.raises(zoo.ZooError, match=r"phase2/stage.json: this stage finished with other settings"):
        zoo.train_stages(zoo.load_recipe(str(changed)), out)


def test_ship_then_load_by_name(tiny_run, tmp_path, monkeypatch):
    out, _ = tiny_run
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    entry = zoo.ship(out / "zoo_record.json", headline=True, zoo_dir=zoo_dir)
    assert zoo.read_index(zoo_dir) == [entry]
    contents = read_checkpoint(zoo_dir.parent / entry["weights"])
    assert contents.format == "project" and "optimizer" not in contents.meta.get("extra", {})
    shipped = load_checkpoint(zoo.verified_weights(entry, zoo_dir))  # strict
    trained = load_checkpoint(out / "stages" / "phase2" / "weights" / "phase2" / "phase2_full_best.pth")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), trained.state_dict().values()))
    # shipped again (new results, the same weights): the file is kept as it is, no new binary for git
    stamp = (zoo_dir / "zoo_tiny.pth").stat().st_mtime_ns
    again = zoo.ship(out / "zoo_record.json", headline=True, zoo_dir=zoo_dir,
                     extra_results={"other data": entry["results"]["mini_val"]})
    assert (zoo_dir / "zoo_tiny.pth").stat().st_mtime_ns == stamp and again["sha256"] == entry["sha256"]
    assert set(zoo.read_index(zoo_dir)[0]["results"]) == {"mini_val", "other data"}
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_dir)
    assert zoo.resolve_checkpoint("zoo:zoo_tiny") == str(zoo_dir / "zoo_tiny.pth")
    assert zoo.resolve_checkpoint("weights/x.pth") == "weights/x.pth"


def test_sha256_mismatch_is_refused_naming_both(tiny_run, tmp_path):
    out, _ = tiny_run
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    entry = zoo.ship(out / "zoo_record.json", headline=True, zoo_dir=zoo_dir)
    with open(zoo_dir.parent / entry["weights"], "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(zoo.ZooError) as err:
        zoo.resolve_checkpoint("zoo:zoo_tiny", zoo_dir)
    assert entry["sha256"] in str(err.value) and "zoo_tiny.pth" in str(err.value) and "index.json" in str(err.value)


def test_unknown_zoo_name_lists_the_known_ones():
    names = [e["name"] for e in zoo.read_index()]
    with pytest.raises(zoo.ZooError, match="unknown zoo model 'nope'; known: " + ", ".join(names)):
        zoo.resolve_checkpoint("zoo:nope")
    run = subprocess.run([sys.executable, "-m", "trackssm_lib", "track", "--data", "x", "--split", "test",
                          "--checkpoint", "zoo:nope", "--out", "x"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "unknown zoo model 'nope'" in run.stderr


def test_recipe_with_an_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("seed: 0\n", "seed: 0\nlearning_rate: 1\n", 1))
    with pytest.raises(zoo.ZooError, match=r"bad.yaml: unknown key 'learning_rate'"):
        zoo.load_recipe(str(bad))
    bad.write_text(TINY.read_text().replace("pretrain_epochs: 1,", "pretrain_epoch: 1,"))
    with pytest.raises(zoo.ZooError, match=r"stages\[0\] \(phase0\).*unknown config key 'pretrain_epoch'"):
        zoo.load_recipe(str(bad))
    bad.write_text(TINY.read_text().replace("start: phase1", "start: phase9"))
    with pytest.raises(zoo.ZooError, match=r"stages\[2\]: start must name an earlier stage"):
        zoo.load_recipe(str(bad))
    with pytest.raises(zoo.ZooError, match="unknown zoo recipe .nope..*known: trackssm-ego, trackssm-official"):
        zoo.load_recipe("nope")


def test_max_scenes_named_in_either_versions_terms():
    mini = ("mini_train", "mini_val")
    assert zoo.export_max_scenes({"train": 300, "val": None, "test": None}, "v1.0-mini", mini, "r.yaml") == \
        {"mini_train": 300, "mini_val": None}
    assert zoo.export_max_scenes({"mini_val": 2}, "v1.0-trainval", ("train", "val", "test"), "r.yaml") == {"val": 2}
    with pytest.raises(zoo.ZooError, match="r.yaml: data.max_scenes: 'test' is mini_val"):
        zoo.export_max_scenes({"val": None, "test": 5}, "v1.0-mini", mini, "r.yaml")
    with pytest.raises(zoo.ZooError, match="unknown split 'trian'"):
        zoo.export_max_scenes({"trian": 5}, "v1.0-mini", mini, "r.yaml")


def test_shipped_recipes_are_valid():
    for name in zoo.list_recipes():
        recipe = zoo.load_recipe(name)
        assert recipe["stages"][0]["phase"] == 0


def test_shipped_weights_load_strictly_and_match_their_sha256():
    entries = zoo.read_index()
    assert entries and sum(e["headline"] for e in entries) == 1
    for entry in entries:
        path = zoo.verified_weights(entry)
        contents = read_checkpoint(path)
        assert contents.format == "project" and "optimizer" not in contents.meta.get("extra", {})
        model = load_checkpoint(path)  # strict: every key with its shape
        recipe = zoo.load_recipe(ROOT / entry["recipe"])
        assert entry["track_args"] == recipe["track_args"]
        stage = next(st for st in recipe["stages"] if st["name"] == recipe["model"])
        assert model.ego_aware == bool(stage.get("set", {}).get("ego_aware", False))
        assert {"test", "real scene-0916"} <= set(entry["results"])
        for result in entry["results"].values():  # the model and the Kalman baselines on every scored data set
            assert {zoo.MODEL_ROW, "kalman", "kalman-ego"} <= set(result["total"])
    assert (ROOT / "zoo" / "README.md").read_text() == zoo.zoo_readme(entries)  # the table is the index's


def test_zoo_list_prints_every_model():
    run = subprocess.run([sys.executable, "-m", "trackssm_lib", "zoo", "list"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    for entry in zoo.read_index():
        assert entry["name"] in run.stdout


def test_headline_real_scene_record_reproduces(real_scene_root, tmp_path):
    """The shipped headline model's recorded run on the real scene-0916 (`gt` detections) reproduces exactly from the
    shipped weights, beside the Kalman filter with ego compensation."""
    from trackssm_lib.export import prepare

    entry = zoo.headline_entry()
    recorded = entry["results"]["real scene-0916"]["runs"]["gt"]
    prepare(real_scene_root, "v1.0-mini", tmp_path / "export", progress=False)
    result = zoo.score(f"zoo:{entry['name']}", entry["track_args"], tmp_path / "export", "mini_val",
                       tmp_path / "eval", detections=["gt"], rows=["kalman-ego"], progress=False)
    assert result["sequences"] == 6
    for tracker in (zoo.MODEL_ROW, "kalman-ego"):
        for metric in ("HOTA", "IDF1", "MOTA", "IDSW"):
            assert result["runs"]["gt"][tracker][metric] == pytest.approx(recorded[tracker][metric], abs=1e-9), \
                (tracker, metric)
