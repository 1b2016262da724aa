"""Multi-label classifiers, a kind in one file (``saliency/tasks/multilabel.py``): a picture per
class whose sigmoid is ``--min-score`` or more, the rows' probabilities the sigmoid, checked
against the bare model's outputs computed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from tests.commands import cli
from tests.outputs_check import manifest_rows
from tests.test_segmentation_runs import photos_folder

NAMES = ("chelsea.png", "coffee.jpg")
LABELS = ["cat", "cup", "outdoor", "person", "text"]
BASE = ("--model", "resnet18", "--kind", "multilabel", "--fit", "resize")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded five-label ResNet-18 whose labels differ between the two photos."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(LABELS))
    with torch.no_grad():
        model.fc.weight.mul_(40)
    folder = tmp_path_factory.mktemp("multilabel")
    torch.save(model.state_dict(), folder / "tags.pth")
    (folder / "tags.txt").write_text("\n".join(LABELS) + "\n")
    return folder / "tags.pth", folder / "tags.txt"


def sigmoids(checkpoint: tuple[Path, Path], name: str) -> torch.Tensor:
    """The bare model's sigmoid per class on the command's input for a sample photo."""
    from saliency import load_image, load_model
    from tests.test_beyond_classifiers import SAMPLES

    loaded = load_model("resnet18", weights=checkpoint[0], labels=checkpoint[1])
    x, _ = loaded.preprocess(load_image(SAMPLES / name), "resize")
    with torch.no_grad():
        return loaded.model(x[None])[0].sigmoid()


def explain(photos: Path, out: Path, checkpoint: tuple[Path, Path], *extra: object):
    return cli("explain", photos, "--out", out, *BASE, "--weights", checkpoint[0],
               "--labels", checkpoint[1], "--method", "gradcam", *extra)  # fmt: skip


def test_a_picture_per_class_above_the_score(tmp_path: Path, checkpoint: tuple[Path, Path]):
    photos = photos_folder(tmp_path, NAMES)
    done = explain(photos, tmp_path / "out", checkpoint, "--min-score", "0.6")
    assert done.returncode == 0, done.stderr
    rows = manifest_rows(tmp_path / "out")
    seen = set()
    for name in NAMES:
        expected = sigmoids(checkpoint, name)
        above = [c for c in range(len(LABELS)) if expected[c] >= 0.6]
        mine = [r for r in rows if r["image"].endswith(name)]
        if not above:
            assert [r["status"] for r in mine] == ["nothing"], mine
            continue
        assert sorted(r["target"] for r in mine) == above
        for row in mine:
            assert row["target_name"] == LABELS[row["target"]]
            assert row["probability"] == pytest.approx(float(expected[row["target"]]), abs=1e-5)
            assert row["found"] == [str(c) for c in above]
            assert row["top5"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
            stem = Path(name).stem
            assert row["outputs"] == [f"{stem}.gradcam.{row['target']}.png"]
            assert (tmp_path / "out" / row["outputs"][0]).is_file()
        seen |= set(above)
    assert len(seen) >= 2  # the checkpoint does tag the photos differently
    again = explain(photos, tmp_path / "out", checkpoint, "--min-score", "0.6")
    assert again.returncode == 0 and "2 already done" in again.stderr


def test_what_a_multilabel_classifier_does_not_take(tmp_path: Path, checkpoint):
    photo = photos_folder(tmp_path, NAMES[:1])
    target = explain(photo, tmp_path / "a", checkpoint, "--target", "cat")
    assert target.returncode == 2 and "multi-label classifier" in target.stderr
    boxes = explain(photo, tmp_path / "b", checkpoint, "--max-detections", "2")
    assert boxes.returncode == 2 and "--max-detections is for a detection model" in boxes.stderr
    score = explain(photo, tmp_path / "c", checkpoint, "--min-score", "1")
    assert score.returncode == 2 and "in (0, 1)" in score.stderr
    drise = explain(photo, tmp_path / "d", checkpoint, "--method", "drise")
    assert drise.returncode == 2 and "multilabel model" in drise.stderr
    detector = cli("explain", photo, "--out", tmp_path / "e", "--kind", "multilabel",
                   "--model", "ssdlite320_mobilenet_v3_large", "--weights", "random")  # fmt: skip
    assert detector.returncode == 2 and "cannot be loaded as multilabel" in detector.stderr


def test_compare_and_evaluate_explain_the_most_likely_label(tmp_path: Path, checkpoint):
    photo = photos_folder(tmp_path, NAMES[:1]) / NAMES[0]
    args = (*BASE, "--weights", checkpoint[0], "--labels", checkpoint[1], "--method", "gradcam")
    compared = cli("compare", photo, "--out", tmp_path / "compare", *args)
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "compare" / "chelsea.compare.png").is_file()
    evaluated = cli("evaluate", photo, "--out", tmp_path / "evaluate", *args, "--curve-steps", "4",
                    "--metric", "deletion")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    board = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())
    assert board
    sensitivity = cli("evaluate", photo, "--out", tmp_path / "e2", *args,
                      "--metric", "class_sensitivity")  # fmt: skip
    assert sensitivity.returncode == 2 and "does not apply to a multilabel" in sensitivity.stderr


def test_its_target_scores_the_sigmoid() -> None:
    from saliency.tasks.multilabel import LabelTarget, TopLabel

    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, 4.0]])
    bound = TopLabel().bind(logits)
    assert isinstance(bound, LabelTarget)
    assert torch.equal(bound.score(logits), torch.tensor([2.0, 4.0]))
    assert torch.allclose(bound.confidence(logits), torch.tensor([2.0, 4.0]).sigmoid())
    assert torch.allclose(bound.select(torch.tensor([1])).confidence(logits[1:]),
                          torch.tensor([4.0]).sigmoid())  # fmt: skip


def test_the_folder_run_s_targets_are_labels_weighed_by_their_sigmoid() -> None:
    """What explain's pictures explain: each class above the score as a LabelTarget, so that
    methods weighing by confidence (RISE) weigh by the sigmoid, as compare and evaluate do (the
    softmax of a multi-label classifier's logits means nothing)."""
    from saliency.engine.objectives import ClassTarget
    from saliency.tasks.multilabel import AbovePlan, LabelTarget

    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, 4.0]])
    first, second = AbovePlan(min_score=0.7).targets(logits)  # sigmoids 0.88; 0.73 and 0.98
    assert isinstance(first, LabelTarget) and isinstance(second, LabelTarget)
    assert first.indices.tolist() == [0, 1] and second.indices.tolist() == [0, 2]
    assert first.present.tolist() == [True, True] and second.present.tolist() == [False, True]
    assert torch.allclose(first.confidence(logits), torch.tensor([2.0, 1.0]).sigmoid())
    softmax = ClassTarget(first.indices).confidence(logits)
    assert not torch.allclose(first.confidence(logits), softmax)  # what it was weighed by
