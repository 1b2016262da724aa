"""A setting's declaration checks and parses values by itself; a manifest row keeps every key,
its own and a method's, and reads back what it wrote."""

from __future__ import annotations

import json

import pytest
import torch

from saliency import MethodOptions, Setting
from saliency.engine.registry import get_method
from saliency.engine.settings import plain
from saliency.files.rows import BASE_KEYS, Prediction, Row

from .test_methods import LAYER_USERS


def test_a_setting_parses_the_command_line_and_checks_python_values() -> None:
    steps = Setting("steps", int, 32, "points", low=1)
    assert steps.parse("8", "ig") == 8 and steps.check(8, "ig") == 8
    for bad in ("0", "2.5", "eight"):
        with pytest.raises(ValueError, match=r"^ig: steps must be a whole number >= 1, got"):
            steps.parse(bad, "ig")
    for value in (True, 2.0, "8", None):  # a bool is no number, a float no whole number
        with pytest.raises(ValueError, match="ig: steps must be"):
            steps.check(value, "ig")
    ratio = Setting("ratio", float, 0.5, "a fraction", low=0.0, high=1.0, low_open=True)
    assert ratio.check(1, "m") == 1.0 and isinstance(ratio.check(1, "m"), float)
    assert ratio.accepts() == "a number in (0, 1]"
    for bad in (0, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"m: ratio must be a number in \(0, 1\]"):
            ratio.check(bad, "m")
    flag = Setting("fast", bool, False, "a switch")
    assert flag.parse("yes", "m") is True and flag.parse("0", "m") is False
    with pytest.raises(ValueError, match="m: fast must be true or false, got 'maybe'"):
        flag.parse("maybe", "m")
    layer = Setting("layer", str, None, "a layer", optional=True)
    assert layer.parse("auto", "m") is None and layer.parse("layer4", "m") == "layer4"
    assert layer.accepts() == "a name, or auto"
    tensor = torch.ones(3)
    baseline = get_method("integrated_gradients").settings[0]
    assert baseline.check(tensor, "ig") is tensor
    assert plain(tensor).startswith("tensor:") and plain(tensor) == plain(torch.ones(3))
    assert plain(tensor) != plain(torch.zeros(3))


def test_options_give_each_method_its_own_values_and_defaults() -> None:
    ig, gradcam = get_method("integrated_gradients"), get_method("gradcam")
    options = MethodOptions(settings={"steps": 4, "layer": "layer4"}).check([ig, gradcam])
    assert options.of(ig) == {"baseline": "black", "steps": 4}
    assert options.of(gradcam) == {"layer": "layer4"} and options.layer == "layer4"
    with pytest.raises(
        ValueError,
        match=f"layer is used only by {LAYER_USERS}, not by integrated_gradients$",
    ):
        options.check([ig])


def test_a_row_writes_every_base_key_then_the_methods_and_reads_back() -> None:
    prediction = Prediction(3, "cat", 0.5, [{"class": 3, "name": "cat", "probability": 0.5}])
    source = {"size": 1, "mtime_ns": 2, "sha256": "ab"}
    extra = {"steps": 8, "peak": 0.25, "anything": [1, "two"]}
    row = Row.ok("a.jpg", "net", "ig", prediction, ["a.ig.png"], source, "f1", extra)
    data = json.loads(json.dumps(row.to_dict()))
    assert tuple(data)[: len(BASE_KEYS)] == BASE_KEYS and data["anything"] == [1, "two"]
    assert Row.from_dict(data) == row and row.key == "output:a.ig.png" and row.is_ok
    failed = Row.failed("b.jpg", "net", "cannot read")
    assert failed.to_dict()["outputs"] == [] and failed.key == "image:b.jpg"
    assert Row.dropped(row).to_dict() == {"image": "a.jpg", "outputs": ["a.ig.png"],
                                          "status": "dropped"}  # fmt: skip
    with pytest.raises(ValueError, match=r"records keys a row has already: \['status'\]"):
        Row.ok("a.jpg", "net", "ig", prediction, ["x.png"], source, "f1", {"status": "x"})
    odd = Row.from_dict({"image": "c", "status": "ok", "outputs": "x", "target": "3", "top5": 5})
    assert odd.outputs == () and odd.target is None and odd.top5 == ()  # wrong types: absent
