"""Targets as objects (issue 34): segmentation and embedding models through the same engine,
checked against the peers' own definitions on seeded random-initialised torchvision models
(``weights=None, weights_backbone=None``: nothing is downloaded) and the sample photos.

* the CAM family with a region target = pytorch-grad-cam with ``SemanticSegmentationTarget``;
* Gradient and Integrated Gradients with a region target = Captum on its segmentation wrapper;
* similarity targets = pytorch-grad-cam's ``SimilarityToConceptTarget`` (and its difference);
* classes as target objects = classes as indices, and what cannot take a target says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

from saliency import ClassTarget, RegionTarget, ScoreTarget, SimilarityTarget, explain
from tests.test_against_grad_cam import PEERS  # the CAM family, method -> its peer class

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
LAYERS = {"fcn_resnet50": "backbone.layer4", "deeplabv3_mobilenet_v3_large": "backbone.16"}


def photos(
    size: tuple[int, int] = (160, 128), names: tuple[str, ...] = ("chelsea.png", "coffee.jpg")
) -> torch.Tensor:
    """Sample photos (two by default), ImageNet-normalized, (B, 3, H, W)."""
    found = [
        np.asarray(Image.open(SAMPLES / name).convert("RGB").resize(size), dtype=np.float32)
        for name in names
    ]
    x = torch.from_numpy(np.stack(found) / 255).permute(0, 3, 1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    return ((x - mean) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)).float()


def calibrated(model: torch.nn.Module) -> torch.nn.Module:
    """Trained-looking batch-norm statistics, so maps are not degenerate; eval mode."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module", params=sorted(LAYERS))
def segmentation(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    name = request.param
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    return name, calibrated(model)


class Out(torch.nn.Module):
    """pytorch-grad-cam's and Captum's tutorials: the segmentation's ``out`` logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def region(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per photo a class and its region: the model's second most frequent class where it
    predicts several (the region is then part of the picture), else a given rectangle."""
    with torch.no_grad():
        predicted = model(x)["out"].argmax(1)
    categories, masks = [], []
    for labels in predicted:
        counts = torch.bincount(labels.flatten(), minlength=21)
        order = counts.argsort(descending=True)
        if counts[order[1]] > 0:
            category = int(order[1])
            masks.append((labels == category).float())
        else:
            category = int(order[0])
            box = torch.zeros_like(labels, dtype=torch.float32)
            box[20:90, 30:120] = 1
            masks.append(box)
        categories.append(category)
    return torch.tensor(categories), torch.stack(masks)


class SimilarityToConceptTarget:
    """pytorch-grad-cam's embedding target, as its "Pixel Attribution for embeddings" tutorial
    defines it (the released package, 1.5.7, does not ship it): per image, the cosine of its
    output with the concept's features."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return torch.nn.CosineSimilarity(dim=0)(model_output, self.features)


class DifferenceFromConceptTarget(SimilarityToConceptTarget):
    """The same tutorial's "what makes it different": 1 - the cosine."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return 1 - super().__call__(model_output)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    assert a.std() > 0 and b.std() > 0  # a map, not a blank
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("method", sorted(PEERS))
def test_cams_with_a_region_target_agree_with_semantic_segmentation_target(
    segmentation: tuple[str, torch.nn.Module], method: str
) -> None:
    name, model = segmentation
    x = photos()
    categories, masks = region(model, x)
    result = explain(model, x, method, RegionTarget(categories, masks), layer=LAYERS[name])
    assert result.targets.tolist() == categories.tolist()
    layer = dict(model.named_modules())[LAYERS[name]]
    targets = [
        SemanticSegmentationTarget(int(c), m.numpy())
        for c, m in zip(categories, masks, strict=True)
    ]
    with PEERS[method](model=Out(model), target_layers=[layer]) as peer:
        theirs = peer(input_tensor=x, targets=targets)
    ours = result.maps.detach()[:, 0].numpy()
    for image in range(len(x)):
        if theirs[image].std() == 0:  # Grad-CAM++'s weights all cut at zero: blank for both
            assert name == "deeplabv3_mobilenet_v3_large" and method == "gradcam_plus_plus"
            assert np.allclose(ours[image], 0)
            continue
        r = pearson(ours[image], theirs[image])
        assert r >= 0.99, (name, method, image, r)


def test_a_region_the_model_assigns_itself_is_its_argmax_on_the_clean_photo(
    segmentation: tuple[str, torch.nn.Module],
) -> None:
    """Without a mask, the region is the pixels the model assigns to the class on the clean
    photo: the same map as with that mask given."""
    name, model = segmentation
    x = photos()
    with torch.no_grad():
        predicted = model(x)["out"].argmax(1)
    category = int(torch.bincount(predicted.flatten()).argmax())
    own = explain(model, x, "gradcam", RegionTarget(category), layer=LAYERS[name])
    given = (predicted == category).float()
    expected = explain(model, x, "gradcam", RegionTarget(category, given), layer=LAYERS[name])
    torch.testing.assert_close(own.maps, expected.maps)


def captum_wrapper(model: torch.nn.Module, masks: torch.Tensor, reduce: str = "sum"):
    """Captum's segmentation tutorial: one score per class, the class's logits summed over the
    fixed region (here per photo; the tutorial's argmax mask is one such region)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = model(x)["out"]
        region = masks[: len(x)] if len(x) == len(masks) else masks.repeat_interleave(
            len(x) // len(masks), dim=0
        )  # fmt: skip
        total = (out * region[:, None]).sum(dim=(2, 3))
        return total / region.sum(dim=(1, 2))[:, None] if reduce == "mean" else total

    return forward


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_gradient_and_integrated_gradients_with_a_region_target_agree_with_captum(
    reduce: str,
) -> None:
    from captum.attr import IntegratedGradients, Saliency

    torch.manual_seed(0)
    model = calibrated(
        torchvision.models.get_model("fcn_resnet50", weights=None, weights_backbone=None)
    )
    x = photos((96, 80))
    categories, masks = region(model, x)
    target = RegionTarget(categories, masks, reduce=reduce)

    ours = explain(model, x, "gradient", target)
    forward = captum_wrapper(model, masks, reduce)
    theirs = Saliency(forward).attribute(x.clone(), target=categories, abs=False)
    scale = float(theirs.abs().max())
    torch.testing.assert_close(ours.maps, theirs, rtol=1e-4, atol=1e-4 * scale)

    baseline = torch.zeros(1, 3, *x.shape[-2:])
    ours = explain(model, x, "integrated_gradients", target, baseline=baseline, steps=4,
                   batch_size=2)  # fmt: skip
    # Captum runs each photo's 4 path points as one batch: the region repeats per point
    theirs = torch.cat(
        [
            IntegratedGradients(captum_wrapper(model, masks[i : i + 1], reduce)).attribute(
                x[i : i + 1].clone(),
                baselines=baseline,
                target=int(categories[i]),
                n_steps=4,
                method="gausslegendre",
            )  # fmt: skip
            for i in range(len(x))
        ]
    )
    scale = float(theirs.abs().max())
    relative = float((ours.maps - theirs).norm() / theirs.norm())
    assert relative <= 1e-4, relative
    torch.testing.assert_close(ours.maps, theirs, rtol=1e-3, atol=1e-4 * scale)


@pytest.fixture(scope="module")
def embedding() -> torch.nn.Module:
    """A classifier with its head removed: an embedding model, (B, 512)."""
    torch.manual_seed(1)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    return calibrated(model)


@pytest.mark.parametrize("different", [False, True])
def test_similarity_targets_agree_with_pytorch_grad_cam(
    embedding: torch.nn.Module, different: bool
) -> None:
    x = photos()
    with torch.no_grad():  # a third photo's embedding
        reference = embedding(photos(names=("astronaut.jpg",)))[0]
    result = explain(embedding, x, "gradcam", SimilarityTarget(reference, different),
                     layer="layer4")  # fmt: skip
    peer_target = DifferenceFromConceptTarget if different else SimilarityToConceptTarget
    with GradCAM(model=embedding, target_layers=[embedding.layer4]) as peer:
        theirs = peer(input_tensor=x, targets=[peer_target(reference)] * len(x))
    ours = result.maps.detach()[:, 0].numpy()
    for image in range(len(x)):
        r = pearson(ours[image], theirs[image])
        assert r >= 0.99, (different, image, r)
    assert result.targets.tolist() == [-1, -1]  # no class


def test_similarity_gradient_is_the_gradient_of_the_cosine(embedding: torch.nn.Module) -> None:
    x = photos((64, 64))
    reference = torch.randn(512, generator=torch.Generator().manual_seed(2))
    result = explain(embedding, x, "gradient", SimilarityTarget(reference))
    inputs = x.clone().requires_grad_(True)
    cosine = torch.nn.functional.cosine_similarity(embedding(inputs), reference[None], dim=1)
    (expected,) = torch.autograd.grad(cosine.sum(), inputs)
    torch.testing.assert_close(result.maps, expected)


def test_every_method_takes_a_region_target_or_says_why_not() -> None:
    """Every registered method on a small segmentation model: a map for each photo, or, for
    the LRP composites (whose relevance starts at one logit of a classifier), D-RISE (a
    detector's) and the rollouts (a transformer's attention), a clear error."""
    from saliency import method_names

    torch.manual_seed(0)
    model = calibrated(
        torchvision.models.get_model(
            "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None
        )
    )
    x = photos((64, 48))
    target = RegionTarget(3, torch.ones(48, 64))
    settings = {
        "integrated_gradients": {"steps": 2, "baseline": "zero"},
        "occlusion": {"window": 16, "stride": 16, "baseline": "zero"},
        "rise": {"masks": 8},
        "scorecam": {},
    }
    for name in method_names():
        if name.startswith("lrp_"):
            with pytest.raises(ValueError, match="LRP starts its relevance at one logit"):
                explain(model, x, name, target)
            continue
        if name == "drise":  # a detection's only
            with pytest.raises(ValueError, match="use rise"):
                explain(model, x, name, target, masks=4)
            continue
        if name in ("rollout", "gradient_rollout"):  # a vision transformer's only
            with pytest.raises(ValueError, match="LRASPP has no attention"):
                explain(model, x, name, target)
            continue
        result = explain(model, x, name, target, batch_size=8, **settings.get(name, {}))
        assert result.maps.shape[0] == 2 and torch.isfinite(result.maps).all(), name
        assert result.targets.tolist() == [3, 3], name


def test_class_targets_as_objects_equal_class_indices() -> None:
    torch.manual_seed(4)
    model = calibrated(torchvision.models.resnet18(num_classes=10))
    x = photos((64, 64))
    for method in ("guided", "gradcam", "integrated_gradients", "occlusion"):
        settings = {"steps": 3} if method == "integrated_gradients" else {}
        if method in ("integrated_gradients", "occlusion"):
            settings["baseline"] = "zero"
        by_index = explain(model, x, method, [3, 7], **settings)
        by_object = explain(model, x, method, ClassTarget(torch.tensor([3, 7])), **settings)
        torch.testing.assert_close(by_object.maps, by_index.maps)
        assert by_object.targets.tolist() == [3, 7]


def test_a_score_of_your_own_explains_any_output() -> None:
    """A multi-label model's third label through its sigmoid: the gradient of that score."""
    torch.manual_seed(5)
    model = calibrated(torchvision.models.resnet18(num_classes=6))
    x = photos((64, 64))
    result = explain(model, x, "gradient", ScoreTarget(lambda out: out.sigmoid()[:, 2], "label 2"))
    inputs = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(inputs).sigmoid()[:, 2].sum(), inputs)
    torch.testing.assert_close(result.maps, expected)
    with pytest.raises(ValueError, match="one score per row"):
        explain(model, x, "gradient", ScoreTarget(lambda out: out.sigmoid()))


def test_a_class_index_on_a_segmentation_says_which_target_to_use() -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(
        "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None
    ).eval()
    with pytest.raises(ValueError, match="RegionTarget for a segmentation"):
        explain(model, photos((64, 48)), "gradient", 3)


def test_segmentation_models_by_name_build_offline_without_backbone_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random weights build with nothing downloaded (an empty torch.hub cache, no network):
    ``weights_backbone=None`` too; pretrained weights offline fail at once naming the ways
    out; the classes are the weights' own (VOC's 21)."""
    from saliency import ModelError, load_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    loaded = load_model("lraspp_mobilenet_v3_large", weights="random")
    assert loaded.task == "segmentation" and loaded.categories[0] == "__background__"
    assert len(loaded.categories) == 21 and loaded.preprocessing.fixed_input_size is False
    assert not (tmp_path / "hub").exists()  # nothing was fetched
    output = loaded.model(photos((64, 48)))
    assert output["out"].shape == (2, 21, 48, 64)
    with pytest.raises(ModelError, match="offline default model"):
        load_model("fcn_resnet50")
    with pytest.raises(ModelError, match="did you mean deeplabv3_resnet50"):
        load_model("deeplabv3_resnet5")


def test_an_embedding_is_a_classifier_without_its_head() -> None:
    from saliency import load_model

    loaded = load_model("resnet18", weights="random", embedding=True)
    assert loaded.task == "embedding" and loaded.categories == []
    assert loaded.model(photos((64, 64))).shape == (2, 512)
    default = load_model(embedding=True)  # timm's own reset_classifier(0)
    assert default.model(photos((224, 224))).shape == (2, 1280)


def test_a_segmentation_has_no_topk(tmp_path: Path) -> None:
    from tests.commands import cli

    done = cli("explain", SAMPLES / "chelsea.png", "--model", "lraspp_mobilenet_v3_large",
               "--weights", "random", "--out", tmp_path / "out", "--target", "topk:2")  # fmt: skip
    assert done.returncode == 2 and "is a segmentation model" in done.stderr
    assert "not topk" in done.stderr and not (tmp_path / "out" / "results.jsonl").exists()


def test_the_command_explains_a_segmentation_class_over_its_region(tmp_path: Path) -> None:
    """``--target CLASS`` on a segmentation model: a picture per photo and method, the row's
    pixel share of the class and its mean probability there (the model's own numbers), resumed;
    a class the model assigns nowhere gives an empty map, said, and a share of 0."""
    import json

    from saliency import load_image, load_model
    from tests.commands import cli

    torch.manual_seed(0)
    model = calibrated(
        torchvision.models.get_model(
            "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None
        )
    )
    torch.save(model.state_dict(), tmp_path / "seg.pth")  # the same weights in every process
    loaded = load_model("lraspp_mobilenet_v3_large", weights=tmp_path / "seg.pth")
    x, _ = loaded.preprocess(load_image(SAMPLES / "chelsea.png"))
    with torch.no_grad():
        probabilities = loaded.model(x[None])["out"].softmax(dim=1)[0]
    labels = probabilities.argmax(dim=0)
    present = int(labels.flatten().mode().values)
    absent = next(c for c in range(21) if not (labels == c).any())
    share = float((labels == present).float().mean())
    mean = float(probabilities[present][labels == present].mean())

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    (photos / "chelsea.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    weights = tmp_path / "seg.pth"
    args = ("explain", photos, "--out", out, "--model", "lraspp_mobilenet_v3_large",
            "--weights", weights, "--method", "gradcam", "--method", "gradient")  # fmt: skip
    done = cli(*args, "--target", present, "--report")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["outputs"][0] for r in rows} == {
        f"chelsea.gradcam.{present}.png",
        f"chelsea.gradient.{present}.png",
    }
    for row in rows:
        assert row["target"] == present and row["top5"] == []
        assert abs(row["pixel_share"] - share) < 1e-3
        assert abs(row["region_probability"] - mean) < 1e-3
        assert row["probability"] == row["region_probability"]
    assert (out / "report.html").is_file()
    again = cli(*args, "--target", present)
    assert again.returncode == 0 and "1 already done" in again.stderr, again.stderr
    nowhere = cli(*args, "--target", absent)
    assert nowhere.returncode == 0 and "all zero" in nowhere.stderr, nowhere.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    empty = [r for r in rows if r["target"] == absent]
    assert len(empty) == 2
    assert all(r["pixel_share"] == 0 and r["region_probability"] is None for r in empty)


def test_the_command_explains_similarity_to_a_photo_and_resumes(tmp_path: Path) -> None:
    """``--similar-to``: the offline default as an embedding, a picture per photo and method,
    a row with the similarity (the cosine the API gives), resumed; a new reference redoes the
    pictures; ``--different-from`` explains 1 - it into pictures of its own; the report shows
    them."""
    import json

    from saliency import load_image, load_model
    from tests.commands import cli

    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("astronaut.jpg", "chelsea.png"):
        (photos / name).write_bytes((SAMPLES / name).read_bytes())
    reference = SAMPLES / "grace_hopper.jpg"
    args = ("explain", photos, "--out", out, "--method", "gradcam", "--method", "gradient")
    done = cli(*args, "--similar-to", reference, "--report")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {r["outputs"][0] for r in rows} == {
        f"{stem}.{method}.similar.png"
        for stem in ("astronaut", "chelsea")
        for method in ("gradcam", "gradient")
    }
    embedder = load_model(embedding=True)
    with torch.no_grad():

        def embed(path: Path) -> torch.Tensor:  # decoded as a run decodes (a reduced DCT scale)
            photo = load_image(path, embedder.preprocessing.source_size)
            return embedder.model(embedder.preprocess(photo)[0][None])[0]

        expected = {
            name: float(torch.nn.functional.cosine_similarity(
                embed(photos / name), embed(reference), dim=0))
            for name in ("astronaut.jpg", "chelsea.png")
        }  # fmt: skip
    for row in rows:  # the folder run's decoding and batching move the cosine a little
        assert row["target"] == -1 and row["target_name"] == "similar to grace_hopper.jpg"
        assert row["probability"] is None and row["top5"] == []
        assert abs(row["similarity"] - expected[Path(row["image"]).name]) < 2e-3
    assert "similar to grace_hopper.jpg" in (out / "report.html").read_text()

    again = cli(*args, "--similar-to", reference)
    assert again.returncode == 0 and "2 already done" in again.stderr, again.stderr
    other = cli(*args, "--similar-to", SAMPLES / "rocket.jpg")
    assert other.returncode == 0 and "2 images done" in other.stderr, other.stderr
    unlike = cli(*args, "--different-from", reference)
    assert unlike.returncode == 0, unlike.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    different = [r for r in rows if r["outputs"][0].endswith(".different.png")]
    assert len(different) == 4
    for row in different:
        assert abs(row["similarity"] - (1 - expected[Path(row["image"]).name])) < 2e-3


def test_similarity_options_that_do_not_fit_are_usage_errors(tmp_path: Path) -> None:
    from tests.commands import cli

    photo = SAMPLES / "chelsea.png"
    both = cli("explain", photo, "--out", tmp_path / "a", "--similar-to", photo,
               "--different-from", photo)  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    classed = cli("explain", photo, "--out", tmp_path / "b", "--similar-to", photo,
                  "--target", "3")  # fmt: skip
    assert classed.returncode == 2 and "--target names a class" in classed.stderr
    missing = cli("explain", photo, "--out", tmp_path / "c", "--similar-to", tmp_path / "no.jpg")
    assert missing.returncode == 2 and "no.jpg" in missing.stderr
    # the option named, the path once (it was "error: /x/no.jpg: /x/no.jpg: no such file")
    assert f"--similar-to {tmp_path / 'no.jpg'}: " in missing.stderr
    assert missing.stderr.count("no.jpg") == 1
    assert "Traceback" not in both.stderr + classed.stderr + missing.stderr
