"""The method registry: every registered method runs, a method from outside registers itself
(in-process and through a real entry point), and ``import saliency`` stays light."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import saliency
from saliency import explain, explain_batch
from saliency.engine import registry
from saliency.engine.options import MethodOptions
from saliency.engine.registry import all_methods, expand_methods, get_method, method_names
from saliency.tasks import get_kind

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).parent / "plugin"


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(params=method_names())
def method(request):
    """Every method in the registry, built-in or installed."""
    return get_method(request.param)


def _quick(method) -> dict:
    """Settings that keep a test fast, for the methods that have them."""
    names = {s.name for s in method.all_settings}
    quick = {"steps": 4, "baseline": "zero", "window": 4, "stride": 2, "masks": 8, "low": -3.0}
    quick["high"] = 3.0  # the z-box rule's bounds, which a bare model does not say
    return {k: v for k, v in quick.items() if k in names}


def _tiny_detector() -> tuple[torch.nn.Module, torch.Tensor, object]:
    """A seeded Faster R-CNN at 64 pixels, two photos of noise, and each one's best box."""
    import torchvision

    from saliency import BoxScoreTarget, Detector

    torch.manual_seed(0)
    net = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=4, min_size=64, max_size=64
    )
    net.roi_heads.score_thresh = 0.0
    detector, x = Detector(net.eval()), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        found = detector(x)
    return detector, x, BoxScoreTarget(found[:, :1, :4], found[:, :1, 5].long())


def _tiny_vit() -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                             num_classes=3).eval()  # fmt: skip


def test_every_registered_method_explains_and_smooths(method):
    model, x = TinyCNN(), torch.randn(2, 3, 8, 8)
    target: object = [0, 2]
    classifier = method.applies_to(get_kind("classification").provides)
    if "attention" in method.requires:  # a vision transformer's
        with pytest.raises(ValueError, match="TinyCNN has no attention"):
            explain(model, x, method.name, target, **_quick(method))
        model, x = _tiny_vit(), torch.randn(2, 3, 32, 32)
    elif not classifier:  # a detector's only
        assert method.needs == {"box targets"}
        model, x, target = _tiny_detector()
        with pytest.raises(ValueError, match="box target"):
            explain(TinyCNN(), torch.randn(2, 3, 8, 8), method.name, [0, 2], **_quick(method))
    plain = explain(model, x, method.name, target, **_quick(method))
    assert plain.method == method.name and plain.maps.shape[0] == 2
    assert plain.maps.shape[-2:] == x.shape[-2:] and torch.isfinite(plain.maps).all()
    assert not classifier or plain.targets.tolist() == [0, 2]
    assert (plain.layer is not None) == method.uses_layer
    smooth = explain(model, x, method.name, target, smooth=3, **_quick(method))
    assert smooth.smooth == 3 and smooth.maps.shape == plain.maps.shape
    assert not torch.equal(smooth.maps, plain.maps)  # the noise changed something
    rows = method.manifest_keys(plain, MethodOptions(settings=_quick(method)))
    assert len(rows) == 2 and all(isinstance(row, dict) for row in rows)


def test_all_lists_every_method_once_in_order():
    names = [m.name for m in all_methods()]
    assert names[:7] == [
        "gradient",
        "deconvnet",
        "guided",
        "gradcam",
        "guided_gradcam",
        "integrated_gradients",
        "gradient_x_input",
    ]

    classifier, detection = get_kind("classification").provides, get_kind("detection").provides
    general = tuple(m.name for m in all_methods() if m.applies_to(classifier))
    assert "drise" in names and "drise" not in general  # a detector's: by its name only
    assert expand_methods(["all"], classifier) == general
    assert expand_methods(["all"]) == tuple(names)  # no kind: every method
    detector = tuple(m.name for m in all_methods() if m.applies_to(detection))
    assert expand_methods(["all"], detection) == detector
    assert "drise" in detector and not any(n.startswith("lrp_") for n in detector)
    rest = tuple(n for n in general if n != "guided")
    assert expand_methods(["guided", "all", "GUIDED"], classifier) == ("guided", *rest)
    assert expand_methods(["drise", "all"], classifier) == ("drise", *general)
    assert sorted(names) == sorted(method_names())


def test_a_bad_registration_is_refused():
    from saliency.engine.method import Method, RulePass

    class Nameless(Method):
        name = "Not An Identifier"
        summary = "x"
        cost = "x"
        passes = (RulePass("guided"),)

    with pytest.raises(ValueError, match="lowercase identifier"):
        saliency.register_method(Nameless)

    class Taken(Method):
        name = "guided"
        summary = "x"
        cost = "x"
        passes = (RulePass("guided"),)

    with pytest.raises(ValueError, match="registered already"):
        saliency.register_method(Taken)
    with pytest.raises(TypeError):
        saliency.register_method(object)  # type: ignore[arg-type]


@pytest.fixture
def plugin_method():
    sys.path.insert(0, str(PLUGIN))
    try:
        import saliency_guided_x_input

        yield saliency_guided_x_input.GuidedXInput
    finally:
        sys.path.remove(str(PLUGIN))
        registry._REGISTRY.pop("guided_x_input", None)
        sys.modules.pop("saliency_guided_x_input", None)


def test_a_method_module_from_outside_registers_and_shares_the_guided_pass(plugin_method):
    model, x = TinyCNN(), torch.randn(2, 3, 8, 8)
    ours = explain(model, x, "guided_x_input", [1, 0])
    guided = explain(model, x, "guided", [1, 0])
    torch.testing.assert_close(ours.maps, guided.maps * x)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    _, (both,) = explain_batch(
        model, x, ["guided", "guided_x_input"], lambda logits: [torch.tensor([1, 0])]
    )
    assert len(calls) == 1  # one forward; the guided pass is shared
    torch.testing.assert_close(both["guided_x_input"].maps, both["guided"].maps * x)


def test_a_plugin_setting_is_a_keyword_checked_by_its_declaration(plugin_method):
    model, x = TinyCNN(), torch.randn(2, 3, 8, 8)
    guided = explain(model, x, "guided", [1, 0])
    scaled = explain(model, x, "guided_x_input", [1, 0], scale=2.5, chunk=3)
    torch.testing.assert_close(scaled.maps, guided.maps * x * 2.5)
    with pytest.raises(ValueError, match=r"guided_x_input: scale must be a number > 0, got -1"):
        explain(model, x, "guided_x_input", scale=-1)
    with pytest.raises(ValueError, match=r"guided_x_input: chunk must be a whole number >= 1"):
        explain(model, x, "guided_x_input", chunk=0)
    with pytest.raises(ValueError, match="scale is used only by guided_x_input, not by guided"):
        explain(model, x, "guided", scale=2.0)
    listed = {s.name: s for s in get_method("guided_x_input").all_settings}
    assert listed["scale"].default == 1.0 and not listed["chunk"].changes_maps


def _plugin_site(tmp_path: Path) -> Path:
    """A site folder holding the plugin module and an installed distribution's metadata whose
    entry point names it: what `pip install` of a plugin package leaves behind."""
    site = tmp_path / "site"
    info = site / "saliency_guided_x_input-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "saliency_guided_x_input.py").write_text(
        (PLUGIN / "saliency_guided_x_input.py").read_text()
    )
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: saliency-guided-x-input\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[saliency.methods]\nguided_x_input = saliency_guided_x_input:GuidedXInput\n"
    )
    return site


def test_an_entry_point_method_with_settings_goes_through_the_command(tmp_path):
    """Listed with its settings; --set reaches its maps, the manifest, the fingerprint (a rerun
    redoes only what a map-changing setting changes) and the report; bad values are usage
    errors naming the method."""
    env = {**os.environ, "PYTHONPATH": str(_plugin_site(tmp_path))}
    command = [sys.executable, "-m", "saliency_cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=300, env=env
        )

    listed = run("methods")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^guided_x_input +Guided Backprop times the input$", listed.stdout, re.M)
    assert re.search(
        r"^ +--set scale=1.0  multiplies the map \(a number > 0\)$", listed.stdout, re.M
    )
    assert re.search(r"^ +--set chunk=8  rows per step", listed.stdout, re.M)
    photo = tmp_path / "cat.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(photo)
    out = tmp_path / "out"
    args = ["explain", str(photo), "--out", str(out), "--method", "guided_x_input"]
    args += ["--method", "guided", "--fit", "resize", "--save-raw"]  # the offline model

    def rows() -> dict[str, dict]:
        lines = (out / "results.jsonl").read_text().splitlines()
        return {row["method"]: row for row in map(json.loads, lines)}

    def stamp() -> int:
        return (out / "cat.guided_x_input.png").stat().st_mtime_ns

    done = run(*args, "--set", "scale=2")
    assert done.returncode == 0, done.stderr
    row = rows()["guided_x_input"]
    assert row["status"] == "ok" and row["scale"] == 2.0 and "chunk" not in row
    raw, guided = np.load(out / "cat.guided_x_input.npy"), np.load(out / "cat.guided.npy")
    assert row["peak"] == pytest.approx(float(np.abs(raw).max()), abs=1e-6)
    assert Image.open(out / "cat.guided_x_input.png").size == (40, 30)
    first = stamp()
    again = run(*args, "--set", "scale=2", "--set", "chunk=2")  # speed only: nothing redone
    assert again.returncode == 0 and stamp() == first, again.stderr
    assert rows()["guided_x_input"]["fingerprint"] == row["fingerprint"]
    redo = run(*args, "--set", "scale=4", "--report")
    assert redo.returncode == 0 and stamp() != first, redo.stderr
    both = rows()
    assert both["guided_x_input"]["scale"] == 4.0
    assert both["guided"]["fingerprint"] and "scale" not in both["guided"]
    np.testing.assert_allclose(np.load(out / "cat.guided_x_input.npy"), 2 * raw, rtol=1e-5)
    np.testing.assert_array_equal(np.load(out / "cat.guided.npy"), guided)
    report = (out / "report.html").read_text()
    assert '"options":{"scale":4.0,"peak":' in report
    for bad, message in [
        (["--set", "scale=0"], "guided_x_input: scale must be a number > 0, got 0.0"),
        (["--set", "scale=big"], "guided_x_input: scale must be a number > 0, got 'big'"),
        (["--set", "scail=2"], "unknown setting 'scail'"),
        (["--set", "scale"], "--set takes NAME=VALUE, got 'scale'"),
        (["--set", "scale=2", "--set", "scale=3"], "the setting scale is given twice"),
    ]:
        refused = run(*args, *bad)
        assert refused.returncode == 2 and message in refused.stderr, (bad, refused.stderr)
    unknown = subprocess.run(
        [*command, "explain", str(photo), "--method", "guided_x_input"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # without the plugin installed the name is not a choice
    assert unknown.returncode == 2 and "guided_x_input" in unknown.stderr


def test_import_saliency_is_light_and_exports_only_the_curated_names():
    code = (
        "import sys, saliency\n"
        "assert 'torch' not in sys.modules, 'import saliency imported torch'\n"
        "names = saliency.method_names()\n"
        "assert 'torch' not in sys.modules, 'listing method names imported torch'\n"
        "print(' '.join(saliency.__all__))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    exported = set(done.stdout.split())
    assert {"explain", "explain_batch", "Explanation", "load_model", "load_image", "render"} <= (
        exported
    )
    assert {"run_sanity", "RuleHooks", "register_method", "Method", "RuleCoverageWarning"} <= (
        exported
    )
    assert not {"find_units", "ForwardPass", "resolve_targets", "forward_pass"} & exported
    for name in saliency.__all__:
        assert getattr(saliency, name) is not None
    assert callable(saliency.explain)  # the function, no module of that name shadows it
    with pytest.raises(AttributeError):
        saliency.find_units  # noqa: B018


def test_an_explanation_shows_itself_and_renders_one_picture():
    model, x = TinyCNN(), torch.randn(3, 3, 16, 12)
    result = explain(model, x, "guided")
    png = result._repr_png_()
    shown = Image.open(__import__("io").BytesIO(png))
    assert shown.size == (3 * 12 + 2 * 4, 16)
    alone = result.render(1)
    assert alone.size == (12, 16) and alone.mode == "RGB"
    photo = Image.new("RGB", (24, 32), (10, 200, 10))
    over = result.render(1, photo, style="overlay", alpha=1.0)
    assert over.size == (24, 32)
    heat = result.render(1, photo, style="heatmap")
    assert heat.size == (24, 32) and heat.tobytes() != over.tobytes()


def test_a_setting_may_not_take_a_row_key_or_a_run_option_or_come_twice():
    from saliency import Method, Setting
    from saliency.engine.method import RulePass
    from saliency.engine.settings import RESERVED
    from saliency.files.rows import BASE_KEYS

    assert set(BASE_KEYS) | {"smooth", "noise", "seed", "batch_size", "raw"} <= RESERVED
    for settings, message in [
        ((Setting("status", str, "x", "clashes with a row key"),), "'status' is reserved"),
        ((Setting("seed", int, 0, "clashes with SmoothGrad's"),), "'seed' is reserved"),
        ((Setting("k", int, 1, "one"), Setting("k", int, 2, "two")), "declares the setting 'k'"),
        (("k",), "settings must be a tuple of saliency.Setting"),
    ]:

        class Clashing(Method):
            name = "clashing"
            summary = "x"
            cost = "x"
            passes = (RulePass("guided"),)

        Clashing.settings = settings  # type: ignore[assignment]
        with pytest.raises(ValueError, match=message):
            saliency.register_method(Clashing)
    with pytest.raises(ValueError, match="the declaration: k must be a whole number >= 1"):
        Setting("k", int, 0, "a default out of its own bounds", low=1)
    with pytest.raises(ValueError, match="lowercase identifier"):
        Setting("Bad Name", int, 0, "x")
