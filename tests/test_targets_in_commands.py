"""``compare``, ``sanity`` and ``evaluate`` with targets (issue 34): a segmentation's class over
its pixels (by default its main class, the one with the most pixels but the background) and an
embedding's similarity to a reference photo, each checked against numbers computed here from
the plain model: the class chosen, the region's mean probability that deletion starts from, the
cosine that a similarity's curves start from, the maps of the unrandomized model.
"""

from __future__ import annotations

import csv
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.commands import cli
from tests.test_beyond_classifiers import SAMPLES
from tests.test_segmentation_runs import MODEL, labels_of, weights  # noqa: F401 (a fixture)

NAMES = ("chelsea.png", "coffee.jpg")


def main_class(labels: torch.Tensor) -> int:
    counts = torch.bincount(labels.flatten(), minlength=21)
    counts[0] = -1  # the background
    return int(counts.argmax())


def curves(path: Path) -> list[dict[str, str]]:
    with open(path / "curves.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_compare_shows_each_photo_s_main_class_with_its_region(weights: Path) -> None:  # noqa: F811
    from saliency import load_model
    from saliency.files.inputs import collect_inputs
    from saliency.pictures.render import RenderOptions
    from saliency.pipeline.compare import compare_rows
    from saliency.tasks import Request

    loaded = load_model(MODEL, weights=weights)
    spec = loaded.kind.plan(loaded, Request())
    files = collect_inputs([str(SAMPLES / n) for n in NAMES]).files
    options = RenderOptions(style="heatmap")  # white is no heatmap colour: only the outline
    for file, row in compare_rows(loaded, files, ("gradcam",), spec, "resize", options):
        assert not isinstance(row, str), row
        labels = labels_of(weights, file.path.name)
        chosen = main_class(labels)
        share = float((labels == chosen).float().mean())
        (title, panel), = row.panels  # fmt: skip
        assert title.endswith(f"{loaded.categories[chosen]} ({share:.1%} of pixels)"), title
        assert (np.asarray(panel.convert("RGB")) == 255).all(axis=-1).any()  # outlined


def test_sanity_keeps_the_region_of_the_original_model(
    tmp_path: Path,
    weights: Path,  # noqa: F811
) -> None:
    """Every randomized step explains the class over the region the original model assigned;
    the unrandomized maps are the API's for that target."""
    from saliency import RegionTarget, explain, load_image, load_model
    from saliency.checks.sanity import _thumbnail, run_sanity
    from saliency.tasks.segmentation import MainRegion

    loaded = load_model(MODEL, weights=weights)
    inputs = [loaded.preprocess(load_image(SAMPLES / n), "resize")[0] for n in NAMES]
    result = run_sanity(loaded.model, inputs, list(NAMES), ("gradient",),
                        normalization=loaded.normalization, target=MainRegion((0,)))  # fmt: skip
    chosen = [main_class(labels_of(weights, n)) for n in NAMES]
    assert all(step == chosen for step in result.classes)
    first = explain(loaded, torch.stack(inputs), "gradient", RegionTarget(torch.tensor(chosen)))
    for i, name in enumerate(NAMES):  # the original model's maps: the API's, thumbnailed
        ours = result.strips[name]["gradient"][0]
        assert np.allclose(ours, _thumbnail(first.maps[i].detach()), atol=1e-5)
    done = cli("sanity", SAMPLES / "chelsea.png", "--model", MODEL, "--weights", weights,
               "--method", "gradient", "--out", tmp_path / "sanity")  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_evaluate_scores_the_region_itself(tmp_path: Path, weights: Path) -> None:  # noqa: F811
    """Deletion starts from the class's mean probability over its region on the clean photo;
    class sensitivity, which compares two classes of a classifier, is refused (ROAD is left
    out here: its imputation at 520x520 takes minutes on 2 cores)."""
    from saliency import load_image, load_model

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in NAMES:
        shutil.copy(SAMPLES / name, photos / name)
    args = ("evaluate", photos, "--model", MODEL, "--weights", weights, "--method", "gradient",
            "--curve-steps", "4", "--fit", "resize")  # fmt: skip
    done = cli(*args, "--metric", "deletion", "--metric", "insertion", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    loaded = load_model(MODEL, weights=weights)
    rows = curves(tmp_path / "out")
    for name in NAMES:
        x, _ = loaded.preprocess(load_image(SAMPLES / name), "resize")
        with torch.no_grad():
            probabilities = loaded.model(x[None])["out"][0].softmax(dim=0)
        labels = probabilities.argmax(dim=0)
        chosen = main_class(labels)
        expected = float(probabilities[chosen][labels == chosen].mean())
        start = next(r for r in rows if r["image"].endswith(name) and r["method"] == "gradient"
                     and r["metric"] == "deletion" and float(r["fraction"]) == 0)  # fmt: skip
        assert abs(float(start["value"]) - expected) < 1e-5
    refused = cli(*args, "--metric", "class_sensitivity", "--out", tmp_path / "no")
    assert refused.returncode == 2 and "class_sensitivity" in refused.stderr


def test_similarity_in_evaluate_compare_and_sanity(tmp_path: Path) -> None:
    """The offline default as an embedding: evaluate's insertion ends at the photo's cosine
    with the reference, every metric but class sensitivity scored by default; compare and
    sanity explain the same similarity."""
    from saliency import load_image, load_model

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLES / "chelsea.png", photos / "chelsea.png")
    reference = SAMPLES / "grace_hopper.jpg"
    common = ("--method", "gradient", "--fit", "resize", "--similar-to", reference)
    done = cli("evaluate", photos, "--curve-steps", "2", "--out", tmp_path / "e", *common)
    assert done.returncode == 0, done.stderr
    loaded = load_model(embedding=True)
    reduce = partial(loaded.preprocessing.source_size, fit="resize")
    with torch.no_grad():
        a, b = (  # each decoded as a run decodes it (a JPEG at a reduced DCT scale)
            loaded.model(loaded.preprocess(load_image(p, reduce), "resize")[0][None])[0]
            for p in (photos / "chelsea.png", reference)
        )
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    start = next(r for r in curves(tmp_path / "e") if r["method"] == "gradient"
                 and r["metric"] == "insertion" and float(r["fraction"]) == 1)  # fmt: skip
    assert abs(float(start["value"]) - cosine) < 1e-4  # all pixels back: the photo itself
    scored = {r["metric"] for r in curves(tmp_path / "e")}
    assert scored == {"deletion", "insertion", "road_morf", "road_lerf"}
    compared = cli("compare", photos, "--out", tmp_path / "c", *common)
    assert compared.returncode == 0 and (tmp_path / "c" / "chelsea.compare.png").is_file()
    checked = cli("sanity", photos, "--out", tmp_path / "s", *common)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("command", ["compare", "sanity", "evaluate"])
def test_one_target_per_photo_refuses_topk(tmp_path: Path, command: str) -> None:
    done = cli(command, SAMPLES / "chelsea.png", "--target", "topk:2", "--out", tmp_path / "o")
    assert done.returncode == 2 and "one target per image" in done.stderr
