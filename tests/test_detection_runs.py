"""Detectors in the commands (issue 35): ``explain`` writes a picture per detection above
``--min-score`` (its box and label drawn) and a row each; resumes, shards and reports (in a real
browser); an image with no detection gets a row that says so; ``compare`` and ``evaluate``
(with the pointing game) work on it.

The model is a seeded random-initialised Faster R-CNN (MobileNetV3, 320) with its batch-norm
statistics taken from the sample photos and its class scores made to depend on the photo (its
classifier's weights scaled up), so that some photos have detections above 0.5 and one has none.
What it detects is computed here with the bare torchvision model, independently of the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from tests.commands import cli
from tests.outputs_check import check_nothing_lost, manifest_rows
from tests.test_beyond_classifiers import SAMPLES
from tests.test_segmentation_runs import photos_folder as copies
from tests.test_segmentation_runs import white

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"
NAMES = ("astronaut.jpg", "coffee.jpg", "chelsea.png")  # chelsea: no detection above 0.5
COCO = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]
ARGS = ("--model", MODEL, "--method", "gradcam", "--method", "guided", "--max-detections", "3")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None)
    photos = [_pixels(name, (320, 320)) for name in (*NAMES, "grace_hopper.jpg", "rocket.jpg")]
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # the statistics of these photos exactly
    net.train()
    with torch.no_grad():
        net.backbone(net.transform(photos)[0].tensors)
        head = net.roi_heads.box_predictor.cls_score
        head.weight.mul_(30)
        head.bias[1] += 4.0  # person
        head.bias[18] += 3.5  # dog
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    torch.save(net.eval().state_dict(), path)
    return path


def _pixels(name: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    image = Image.open(SAMPLES / name).convert("RGB")
    image = image.resize(size) if size else image
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def expected(
    weights: Path, name: str, min_score: float = 0.5, most: int = 3
) -> list[dict[str, Any]]:
    """The detections the bare torchvision model makes on the command's input for ``name``
    (the photo resized as the command resizes it), boxes on the photo, the ``most`` best."""
    from saliency import load_image, load_model

    loaded = load_model(MODEL, weights=weights)
    photo = load_image(SAMPLES / name)
    x, geometry = loaded.preprocess(photo)
    with torch.no_grad():
        found = loaded.model.detector([x])[0]
    scale = photo.size[0] / x.shape[-1], photo.size[1] / x.shape[-2]
    return [
        {"label": int(label), "score": float(score),
         "box": [float(box[0]) * scale[0], float(box[1]) * scale[1],
                 float(box[2]) * scale[0], float(box[3]) * scale[1]]}
        for box, label, score in zip(found["boxes"], found["labels"], found["scores"], strict=True)
        if score >= min_score
    ][:most]  # fmt: skip


def photos_folder(root: Path) -> Path:
    return copies(root, NAMES)


def explain(photos: Path, out: Path, weights: Path, *extra: object) -> Any:
    return cli("explain", photos, "--out", out, *ARGS, "--weights", weights, *extra)


def test_a_picture_and_a_row_per_detection_with_its_box_drawn(tmp_path: Path, weights: Path):
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    done = explain(photos, out, weights, "--style", "heatmap")  # white is no heatmap colour
    assert done.returncode == 0, done.stderr
    rows = check_nothing_lost(out)
    for name in NAMES:
        wanted, stem = expected(weights, name), Path(name).stem
        mine = [r for r in rows if Path(r["image"]).name == name]
        if not wanted:
            continue  # the next test's
        ranks = [f"box{n}" for n in range(1, len(wanted) + 1)]
        assert sorted(r["outputs"][0] for r in mine) == sorted(
            f"{stem}.{method}.{rank}.png" for method in ("gradcam", "guided") for rank in ranks
        )
        for row in mine:
            detection = wanted[ranks.index(row["outputs"][0].split(".")[-2])]
            assert row["found"] == ranks and row["target"] == detection["label"]
            assert abs(row["score"] - detection["score"]) < 1e-5
            assert row["probability"] == row["score"]
            assert row["label"] == row["target_name"] == COCO[detection["label"]]
            assert np.allclose(row["box"], detection["box"], atol=0.2)
            assert 0 <= row["box_share"] <= 1
            picture = white(out / row["outputs"][0])
            x1, y1, x2, y2 = (round(v) for v in row["box"])
            edge = picture[y1 + 2 : y2 - 2, max(0, x1 - 2) : x1 + 3]  # the box's left side
            assert edge.any(axis=1).mean() > 0.9, row["outputs"][0]
            assert not picture[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8].any()  # drawn, not filled
    assert any(expected(weights, name) for name in NAMES)
    assert f"{len([r for r in rows if r['outputs']])} maps written" in done.stderr


def test_an_image_without_detections_gets_a_row_and_a_rerun_does_nothing(
    tmp_path: Path, weights: Path
) -> None:
    assert not expected(weights, "chelsea.png")
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    first = explain(photos, out, weights)
    assert first.returncode == 0, first.stderr
    assert "chelsea.png: gradcam: no detection scored 0.5 or more" in first.stderr
    rows = manifest_rows(out)
    nothing = [r for r in rows if Path(r["image"]).name == "chelsea.png"]
    assert sorted(r["method"] for r in nothing) == ["gradcam", "guided"]
    assert all(r["status"] == "ok" and r["outputs"] == [] and r["found"] == [] for r in nothing)
    times = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = explain(photos, out, weights)
    assert again.returncode == 0, again.stderr
    assert "0 images done, 0 maps written" in again.stderr and "3 already done" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == times
    assert manifest_rows(out) == rows
    best = expected(weights, "chelsea.png", 0.0)[0]["score"]
    lower = f"{best - 0.005:.4f}"  # another setting: every photo redone, chelsea's best shown
    assert explain(photos, out, weights, "--min-score", lower).returncode == 0
    assert "chelsea.gradcam.box1.png" in {p.name for p in out.glob("*.png")}
    rows = check_nothing_lost(out)
    assert all(r["outputs"] for r in rows) and len(rows) > len(times)


def test_per_box_normalize_cuts_each_map_to_its_box(tmp_path: Path, weights: Path) -> None:
    photos, out = photos_folder(tmp_path), tmp_path / "out"
    done = explain(photos, out, weights, "--per-box-normalize", "--save-raw", "--fit", "resize")
    assert done.returncode == 0, done.stderr
    for row in manifest_rows(out):
        if not row["outputs"]:
            continue
        raw = np.load(out / row["outputs"][1])
        geometry = json.loads((out / row["outputs"][2]).read_text())
        sx = geometry["input_size"][0] / geometry["image_size"][0]
        sy = geometry["input_size"][1] / geometry["image_size"][1]
        x1, y1, x2, y2 = row["box"]  # on the photo, to 0.1 pixel: a pixel's leeway
        near = np.zeros(raw.shape[-2:], dtype=bool)
        near[int(y1 * sy) - 1 : round(y2 * sy) + 1, int(x1 * sx) - 1 : round(x2 * sx) + 1] = True
        assert np.abs(raw[..., ~near]).max() == 0, row["outputs"][0]
        assert raw.max() == pytest.approx(1.0) and raw.min() == 0


def test_shards_then_merge_give_the_single_run(tmp_path: Path, weights: Path) -> None:
    photos = photos_folder(tmp_path)
    single, out = tmp_path / "single", tmp_path / "out"
    assert explain(photos, single, weights).returncode == 0
    for shard in ("0/2", "1/2"):
        done = explain(photos, out, weights, "--shard", shard)
        assert done.returncode == 0, done.stderr
    assert cli("merge", out).returncode == 0
    mine, theirs = check_nothing_lost(out), check_nothing_lost(single)

    def key(row: dict[str, Any]) -> tuple[str, str, str]:
        return row["image"], row["method"], row["outputs"][0] if row["outputs"] else ""

    assert sorted(map(key, mine)) == sorted(map(key, theirs))
    for a, b in zip(sorted(mine, key=key), sorted(theirs, key=key), strict=True):
        assert a["box"] == b["box"] if "box" in a else a["found"] == b["found"] == []


def test_a_detector_report_in_the_browser(browser: Any, tmp_path: Path, weights: Path) -> None:
    """A card per photo, a picture per detection named by its label; a photo without
    detections says so on its card."""
    from tests.test_report import Page

    photos, out = photos_folder(tmp_path), tmp_path / "out"
    done = explain(photos, out, weights, "--report")
    assert done.returncode == 0, done.stderr
    report = Page(browser, out / "report.html")
    page = report.open()
    assert sorted(report.cards()) == sorted(NAMES)
    assert report.images_decoded() == []
    maps = [a for a in page.eval_on_selector_all("#cards img", "els => els.map(e => e.alt)")
            if " map " in a]  # fmt: skip
    assert len(maps) == len([r for r in manifest_rows(out) if r["outputs"]])
    text = page.locator("#cards").text_content() or ""
    label = COCO[expected(weights, "astronaut.jpg")[0]["label"]]
    # captions as a person reads them ("82.0% inside its box, score 91.0%"), not raw keys
    assert "inside its box" in text and "score " in text and label in text
    assert "box_share" not in text and "label " not in text
    assert "no detection scored 0.5 or more" in text
    assert page.locator(".card .note").count() == 2  # chelsea's, per method
    assert page.locator(".card.error").count() == 0 and report.problems == []


def test_compare_and_evaluate_on_a_detector(tmp_path: Path, weights: Path) -> None:
    """compare draws the best detection's box; evaluate's insertion, scoring the detection's
    D-RISE similarity, puts Grad-CAM and D-RISE above the random map on photos with
    detections, and the pointing game is scored."""
    photos = photos_folder(tmp_path)
    compared = cli("compare", photos / "astronaut.jpg", "--out", tmp_path / "compare",
                   "--model", MODEL, "--weights", weights, "--method", "gradcam")  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "compare" / "astronaut.compare.png").is_file()
    evaluated = cli(
        "evaluate", photos / "astronaut.jpg", photos / "coffee.jpg", "--out", tmp_path / "eval",
        "--model", MODEL, "--weights", weights, "--method", "gradcam", "--method", "drise",
        "--set", "masks=50", "--curve-steps", "4", "--metric", "insertion", "--metric",
        "pointing_game",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    scores = [
        line.split(",") for line in (tmp_path / "eval" / "evaluation.csv").read_text().splitlines()
    ]
    header, body = scores[0], scores[1:]

    def mean(method: str, metric: str) -> float:
        values = [
            float(r[header.index("value")])
            for r in body
            if r[header.index("method")] == method and r[header.index("metric")] == metric
        ]
        assert len(values) == 2, (method, metric)
        return sum(values) / 2  # fmt: skip

    for method in ("gradcam", "drise"):
        assert mean(method, "insertion") > mean("random", "insertion") + 0.1, method
        assert mean(method, "pointing_game") in (0.0, 0.5, 1.0)
    checked = cli("sanity", photos / "astronaut.jpg", "--out", tmp_path / "sanity",
                  "--model", MODEL, "--weights", weights, "--method", "gradcam")  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    # the detector's parts, its heads whole and its backbone stage by stage, not one step
    assert "step 1 randomizes detector.roi_heads, step 20 ends with detector.backbone.body.0" in (
        " ".join((checked.stdout + checked.stderr).split())
    )


def test_at_min_score_0_padding_is_never_a_detection(tmp_path: Path, weights: Path) -> None:
    """A Detector pads its output with rows of score 0 and label -1: at ``--min-score 0`` the
    rows are still the detections the bare model makes (its own threshold, 0.05), each label
    a name, never a padding row (box [0, 0, 0, 0], label -1, named after the last class). The
    background's logit raised, the model finds few detections, so padding follows them."""
    state = torch.load(weights)
    state["roi_heads.box_predictor.cls_score.bias"][0] += 12.0
    shy = tmp_path / "shy.pth"
    torch.save(state, shy)
    photos = photos_folder(tmp_path)
    done = cli("explain", photos, "--out", tmp_path / "out", "--model", MODEL, "--weights", shy,
               "--method", "gradcam", "--min-score", "0", "--max-detections", "20",
               "--batch-size", "1")  # one photo a pass, as expected() runs them  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = manifest_rows(tmp_path / "out")
    made = {name: expected(shy, name, min_score=0.0, most=20) for name in NAMES}
    assert any(len(found) < 20 for found in made.values())  # the rest of the rows: padding
    for name, found in made.items():
        mine = [r for r in rows if r["image"].endswith(name)]
        if not found:  # one row that says so, no picture
            assert [(r["outputs"], r["found"]) for r in mine] == [([], [])]
            continue
        assert [r["score"] for r in mine] == pytest.approx([d["score"] for d in found], abs=1e-4)
        assert [r["label"] for r in mine] == [COCO[d["label"]] for d in found]
    assert all(isinstance(r["label"], str) and r["box"] != [0, 0, 0, 0] for r in rows if "box" in r)


def test_usage_errors_around_detectors(tmp_path: Path, weights: Path) -> None:
    photo = SAMPLES / "astronaut.jpg"
    on_classifier = cli("explain", photo, "--out", tmp_path / "a", "--weights", "random",
                        "--model", "resnet18", "--min-score", "0.3")  # fmt: skip
    assert on_classifier.returncode == 2
    assert "--min-score is for a multilabel or detection model" in on_classifier.stderr
    with_class = explain(photo, tmp_path / "b", weights, "--target", "person")
    assert with_class.returncode == 2 and "explains each detection" in with_class.stderr
    device = explain(photo, tmp_path / "c", weights, "--device-pipeline")
    assert device.returncode == 2 and "drawn on the CPU" in device.stderr
    lrp = explain(photo, tmp_path / "e", weights, "--method", "lrp_epsilon_plus")
    assert lrp.returncode == 2 and "needs class logits" in lrp.stderr
    drise = cli("explain", photo, "--out", tmp_path / "f", "--weights", "random",
                "--model", "resnet18", "--method", "drise")  # fmt: skip
    assert drise.returncode == 2 and "rise is its kind's" in drise.stderr
    pointing = cli("evaluate", photo, "--out", tmp_path / "d", "--model", "resnet18",
                   "--weights", "random", "--metric", "pointing_game")  # fmt: skip
    assert pointing.returncode == 2 and "takes a detection model" in pointing.stderr


def test_drise_does_no_work_for_a_photo_without_detections(weights: Path) -> None:
    """A photo with no detection costs D-RISE nothing (it ran all its masks on it): in a batch
    with one that has detections, the masked passes carry that photo alone, whose maps are
    the ones it gets on its own; the other's map is empty (no picture is made of it)."""
    from saliency import MethodOptions, explain_batch, load_image, load_model
    from saliency.tasks.detection import DetectionsPlan

    loaded = load_model(MODEL, weights=weights)
    plan = DetectionsPlan(k=2)
    batch = torch.stack([
        loaded.preprocess(load_image(SAMPLES / name), "resize")[0]
        for name in ("chelsea.png", "astronaut.jpg")
    ])  # fmt: skip
    seen: list[int] = []
    hook = loaded.model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    options = MethodOptions(batch_size=4, settings={"masks": 8})
    try:
        logits, results = explain_batch(loaded, batch, ["drise"], plan.targets, options)
        seen_both, seen[:] = list(seen), []
        _, alone = explain_batch(loaded, batch[1:], ["drise"], plan.targets, options)
    finally:
        hook.remove()
    present = plan.present(logits)
    assert present[0] == [] and len(present[1]) == 2  # chelsea: none; astronaut: two
    assert seen_both == [2, 4, 4]  # the clean pass, then 8 masks of astronaut alone, 4 a pass
    for rank, result in enumerate(results):
        maps = result["drise"].maps
        assert float(maps[0].abs().sum()) == 0
        torch.testing.assert_close(maps[1:], alone[rank]["drise"].maps)
        assert float(maps[1].abs().sum()) > 0


def test_drise_says_its_cost_first_and_skips_a_photo_without_detections(
    tmp_path: Path, weights: Path
) -> None:
    """The command states D-RISE's cost (its 4,000 masks, the model's pass measured) before it
    starts; on a photo with no detection it runs none of them and says so in the row."""
    photos, out = copies(tmp_path, ("chelsea.png",)), tmp_path / "out"
    done = cli("explain", photos, "--out", out, "--model", MODEL, "--weights", weights,
               "--method", "drise", timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = done.stderr
    assert "note: drise costs 4,000 forward passes per photo and detection" in said, said
    assert "--set masks=N for another count" in said and "a pass measured now at" in said
    assert said.index("note: drise") < said.index("1 image done")
    (row,) = manifest_rows(out)
    assert row["outputs"] == [] and row["found"] == [] and "no detection" in row["note"]
