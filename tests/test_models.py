"""load_model and list_models: the offline default, torchvision and timm by name, local weights."""

import json
import time
import warnings

import pytest
import torch
import torchvision

import saliency
from saliency import ModelError, explain, load_image, load_model
from saliency.models.checkpoints import match_by_position
from saliency.models.listing import list_models
from saliency.models.zoo import torchvision_names
from tests.untrusted import Payload

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def default_model():
    return load_model(device="cpu")


@pytest.mark.parametrize("fit", ["native", "crop"])
def test_offline_default_classifies_real_photos(default_model, fit):
    def top(path, k):
        x, _ = default_model.preprocess(load_image(path), fit)
        with torch.no_grad():
            logits = default_model.model(x[None])[0]
        return [default_model.categories[i] for i in logits.topk(k).indices]

    assert top("sample_images/coffee.jpg", 1) == ["espresso"]
    assert CAT_CLASSES & set(top("sample_images/chelsea.png", 3))


def test_offline_default_metadata(default_model):
    assert default_model.source == "default" and default_model.name == "efficientnet_lite0"
    assert default_model.input_size == 224 and default_model.default_fit == "native"
    prep = default_model.preprocessing
    assert prep.mean == (0.5, 0.5, 0.5) and prep.interpolation == "bicubic"
    assert prep.resize_size == 256  # crop_pct 0.875
    assert len(default_model.categories) == 1000 and default_model.categories[967] == "espresso"
    assert not default_model.model.training


def test_position_loading_checks_every_shape():
    own = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    with pytest.raises(ModelError, match=r"does not fit b \(4,\)"):
        match_by_position(own, {"x": torch.zeros(2, 3), "y": torch.zeros(5)})
    with pytest.raises(ModelError, match="1 tensors, the model 2"):
        match_by_position(own, {"x": torch.zeros(2, 3)})


SLOW = {"vit_h_14", "regnet_y_128gf"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in torchvision_names()],
)
def test_every_torchvision_classifier_builds_and_explains(name):
    loaded = load_model(name, weights="random", device="cpu")
    assert loaded.source == "torchvision" and len(loaded.categories) == 1000
    fixed = loaded.preprocessing.fixed_input_size
    size = loaded.input_size if fixed else (80 if name == "inception_v3" else 64)
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", saliency.RuleCoverageWarning)  # GELU/SiLU nets warn
        result = explain(loaded.model, x, "guided")
    assert result.maps.shape == x.shape and torch.isfinite(result.maps).all()
    assert result.logits.shape == (1, 1000)


def test_timm_by_name_with_random_weights():
    loaded = load_model("timm/resnet18", weights="random", device="cpu")
    assert loaded.source == "timm" and loaded.categories[0] == "tench"
    assert loaded.preprocessing.interpolation == "bicubic"
    assert explain(loaded.model, torch.randn(1, 3, 64, 64)).report.units == {"ReLU": 17}


def small_resnet(classes):
    torch.manual_seed(1)
    return torchvision.models.resnet18(num_classes=classes).eval()


def test_wrapped_state_dict_round_trip(tmp_path):
    model = small_resnet(10)
    path = tmp_path / "finetuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded = load_model("resnet18", weights=path, device="cpu")
    assert loaded.categories == [f"class {i}" for i in range(10)]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    # {"model": ...} wrapping and a labels file, text or JSON
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    names = [f"kind {i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "labels.json").write_text(json.dumps(names))
    for labels in ("labels.txt", "labels.json"):
        loaded = load_model("resnet18", weights=path, labels=tmp_path / labels, device="cpu")
        assert loaded.categories == names
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(ModelError, match="2 labels for a model of 10 classes"):
        load_model("resnet18", weights=path, labels=tmp_path / "short.txt", device="cpu")


def test_checkpoint_that_does_not_fit(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet34(num_classes=10).state_dict(), path)
    with pytest.raises(ModelError, match="does not fit resnet18"):
        load_model("resnet18", weights=path, device="cpu")
    with pytest.raises(ModelError, match="weights file not found"):
        load_model("resnet18", weights=tmp_path / "nope.pth", device="cpu")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": small_resnet(10).state_dict(), "extra": Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ModelError, match="refused to load"):
        load_model("resnet18", weights=path, device="cpu")
    assert not marker.exists()


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ModelError, match="unknown model 'resnet5'; did you mean resnet50"):
        load_model("resnet5")
    with pytest.raises(ModelError, match="did you mean timm/resnet50"):
        load_model("timm/resnt50")
    with pytest.raises(ModelError, match="no weights 'FOO'; valid: IMAGENET1K_V1, IMAGENET1K_V2"):
        load_model("resnet50:FOO")


@pytest.mark.parametrize("name", ["resnet50", "vgg16:IMAGENET1K_V1", "timm/resnet50"])
def test_no_network_fails_fast_with_the_ways_out(monkeypatch, tmp_path, name):
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached there
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelError, match="efficientnet_lite0.*local weights"):
        load_model(name)
    assert time.monotonic() - start < 5


def test_cached_torchvision_weights_load_offline(monkeypatch, tmp_path):
    """Weights already in torchvision's cache are used without any network."""
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.SqueezeNet1_1_Weights.DEFAULT
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    model = torchvision.models.squeezenet1_1()
    torch.save(model.state_dict(), cache / weights.url.rsplit("/", 1)[1])
    monkeypatch.setattr(
        weights,
        "get_state_dict",
        lambda **kw: torch.load(cache / weights.url.rsplit("/", 1)[1], weights_only=True),
    )
    loaded = load_model("squeezenet1_1", device="cpu")
    assert loaded.categories[0] == "tench"
    rows = {row.name: row for row in list_models()}
    assert rows["squeezenet1_1"].offline and not rows["resnet50"].offline


def test_list_models():
    rows = list_models()
    names = [row.name for row in rows]
    assert names[0] == "efficientnet_lite0" and rows[0].offline and rows[0].parameters > 4_000_000
    assert {"resnet50", "vgg16", "densenet121", "mobilenet_v2", "inception_v3"} <= set(names)
    resnet = next(row for row in rows if row.name == "resnet50")
    assert resnet.source == "torchvision" and resnet.parameters == 25_557_032
    kinds = {row.name: row.source for row in rows}
    assert kinds["fasterrcnn_resnet50_fpn_v2"] == "torchvision detection"
    assert kinds["lraspp_mobilenet_v3_large"] == "torchvision segmentation"
    assert all(row.offline for row in list_models(offline_only=True))
