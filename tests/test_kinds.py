"""Kinds of model as objects: outside ``saliency/tasks`` no code asks which kind a model is, and a
kind that another package registers (an entry point in ``saliency.kinds``) runs through the
command, the pipeline and its rows with no edit to this project."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

from saliency.tasks import all_kinds, get_kind, register_kind
from saliency.tasks.kind import NEEDS, Kind
from tests.commands import cli
from tests.outputs_check import manifest_rows
from tests.test_beyond_classifiers import SAMPLES

ROOT = Path(__file__).resolve().parent.parent
KIND_NAMES = {"classification", "multilabel", "segmentation", "detection", "embedding"}
OLD = {"TargetSpec", "is_similarity", "segmentation_spec", "detection_spec", "similarity_spec"}


def _sources() -> list[Path]:
    found = [*(ROOT / "saliency").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    return [p for p in found if "tasks" not in p.relative_to(ROOT).parts]


def _kind_tests(path: Path, root: Path = ROOT) -> list[str]:
    """Where ``path`` asks which kind a model is: a comparison with a kind's name, a read of
    ``.task`` (the old kind string), or a name of the old target specs."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Compare):
            constants = [
                c.value
                for side in (node.left, *node.comparators)
                for c in ast.walk(side)
                if isinstance(c, ast.Constant)
            ]
            if KIND_NAMES & {c for c in constants if isinstance(c, str)}:
                found.append(f"{where}: compares with a kind's name")
        drawing = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
            node.value.id == "work"  # the executor's drawing task, no kind
        )
        if isinstance(node, ast.Attribute) and node.attr == "task" and not drawing:
            found.append(f"{where}: reads .task")
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in OLD:
                found.append(f"{where}: {name}")
    return found


def test_no_code_outside_the_kinds_asks_which_kind_a_model_is() -> None:
    found = [line for path in _sources() for line in _kind_tests(path)]
    assert not found, found


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("if loaded.task == 'detection' or kind in ('segmentation',):\n"
                      "    spec = TargetSpec()\n")  # fmt: skip
    found = _kind_tests(sample, tmp_path)
    assert len(found) == 4, found  # two comparisons, a .task, an old spec


def test_the_built_in_kinds_are_registered_and_provide_known_needs() -> None:
    assert [k.name for k in all_kinds()][:5] == [
        "classification", "multilabel", "segmentation", "detection", "embedding",
    ]  # fmt: skip
    for kind in all_kinds():
        assert kind.provides <= set(NEEDS) and kind.summary
    with pytest.raises(ValueError, match="unknown kind of model 'boxes'; kinds: classification"):
        get_kind("boxes")
    with pytest.raises(TypeError):
        register_kind(int)  # type: ignore[arg-type]

    class Nameless(Kind):
        name = "Not A Name"
        summary = "x"

    with pytest.raises(ValueError, match="lowercase identifier"):
        register_kind(Nameless)


PLUGIN = '''
"""A kind from another package: a classifier explained by its margin, the top-1 logit minus
the top-2 logit, a picture per image."""

from dataclasses import dataclass

import torch

from saliency import Kind, ScoreTarget, TargetPlan, register_kind
from saliency.tasks import Records


def margin(output):
    top = output.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


@dataclass(frozen=True)
class MarginPlan(TargetPlan):
    def targets(self, logits):
        return [ScoreTarget(margin, "margin")]

    def suffixes(self):
        return ["margin"]

    def name(self, index, categories):
        return "top-1 margin"

    def fingerprint(self):
        return {"target": {"kind": "margin"}}

    def records(self, logits, size, rows, geometries, categories):
        values = margin(logits.float()).tolist()
        return Records([None] * len(values), [{"margin": round(v, 6)} for v in values])

    def panel(self, logits, index, size, categories):
        return f"margin {float(margin(logits.float())[0]):.3f}", None


@register_kind
class Margin(Kind):
    name = "margin"
    summary = "a classifier's top-1 margin over its runner-up"
    made_from = ("classification",)
    takes = frozenset()

    def plan(self, loaded, request):
        from saliency.tasks.registry import check_request

        check_request(self, loaded, request)
        return MarginPlan()
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package on a path of its own, with its entry point in ``saliency.kinds``."""
    site = tmp_path_factory.mktemp("site")
    (site / "margin_kind.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "margin_kind-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: margin-kind\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[saliency.kinds]\nmargin = margin_kind:Margin\n")
    return site


def test_a_kind_from_another_package_runs_through_the_command(tmp_path: Path, plugin: Path):
    torch.manual_seed(0)
    weights = tmp_path / "net.pth"
    torch.save(torchvision.models.resnet18(num_classes=4).state_dict(), weights)
    env = {"PYTHONPATH": str(plugin)}
    args = ("--model", "resnet18", "--weights", weights, "--kind", "margin", "--fit", "resize")
    out = tmp_path / "out"
    done = cli("explain", SAMPLES / "chelsea.png", SAMPLES / "coffee.jpg", "--out", out, *args,
               "--method", "gradient", "--method", "gradcam", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    from saliency import load_image, load_model

    loaded = load_model("resnet18", weights=weights)
    rows = manifest_rows(out)
    assert len(rows) == 4
    for row in rows:
        x, _ = loaded.preprocess(load_image(SAMPLES / Path(row["image"]).name), "resize")
        with torch.no_grad():
            top = loaded.model(x[None])[0].topk(2).values
        assert row["margin"] == pytest.approx(float(top[0] - top[1]), abs=1e-4)
        assert row["target_name"] == "top-1 margin" and row["top5"] == []
        assert row["outputs"][0].endswith(f".{row['method']}.margin.png")
        assert (out / row["outputs"][0]).is_file()
    refused = cli("explain", SAMPLES / "chelsea.png", "--out", tmp_path / "b", *args,
                  "--target", "1", env=env)  # fmt: skip
    assert refused.returncode == 2 and "is a margin model" in refused.stderr
    compared = cli("compare", SAMPLES / "chelsea.png", "--out", tmp_path / "c", *args,
                   "--method", "gradcam", env=env)  # fmt: skip
    assert compared.returncode == 0, compared.stderr
