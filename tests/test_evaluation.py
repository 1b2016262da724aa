"""Evaluating maps (issue 17): the metrics against hand computation and pytorch-grad-cam's ROAD
imputer, determinism, and the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from saliency.evaluation.metrics import (
    area,
    deletion_curves,
    road_curves,
    spearman,
    substrate,
)
from saliency.evaluation.ranking import centre_map, random_map, ranks, removed
from saliency.evaluation.road import WEIGHTS, _same_holes, _system, impute, impute_cg
from saliency.evaluation.run import Protocol, batches, evaluate

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"


class PixelSum(nn.Module):
    """Logits (s, 0) with s = the sum of the image's values times ``weights``: the softmax
    probability of class 0 is 1 / (1 + exp(-s)), computable by hand after any perturbation."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights = nn.Parameter(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.weights).sum((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def by_hand(x: torch.Tensor, weights: torch.Tensor) -> float:
    return float(torch.sigmoid((x * weights).sum()))


def test_ranks_put_the_highest_first_and_break_ties_in_reading_order() -> None:
    values = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
    assert ranks(values).tolist() == [[[1, 0], [2, 3]]]
    assert removed(ranks(values), 0.5).tolist() == [[[True, True], [False, False]]]
    assert removed(ranks(values), 0.25, most_first=False).tolist() == [
        [[False, False], [False, True]]
    ]


def test_deletion_and_insertion_curves_by_hand() -> None:
    weights = torch.tensor([[[[2.0, -1.0], [0.5, 1.0]]]])
    model = PixelSum(weights)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    base = torch.zeros_like(x)  # substrate: zeros, as in RISE's deletion
    places = ranks(torch.tensor([[[4.0, 1.0], [3.0, 2.0]]]))  # order: (0,0), (1,0), (1,1), (0,1)
    target = torch.tensor([0])

    def probabilities(copies: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        return model(copies).softmax(1).gather(1, wanted[:, None])[:, 0]

    steps = [x.clone()]
    for i, j in [(0, 0), (1, 0), (1, 1), (0, 1)]:
        step = steps[-1].clone()
        step[0, 0, i, j] = 0
        steps.append(step)
    expected = [by_hand(s, weights) for s in steps]
    curve = deletion_curves(x, places, base, target, 4, False, probabilities)
    np.testing.assert_allclose(curve[0].detach().numpy(), expected, rtol=1e-6)
    inserted = deletion_curves(x, places, base, target, 4, True, probabilities)
    back = [by_hand(x - s, weights) for s in steps]  # what is put back: x minus what is gone
    np.testing.assert_allclose(inserted[0].detach().numpy(), back, rtol=1e-6)
    trapezoid = sum((a + b) / 2 * 0.25 for a, b in zip(expected, expected[1:], strict=False))
    assert float(area(curve.detach(), [0, 0.25, 0.5, 0.75, 1.0])[0]) == pytest.approx(trapezoid)


def test_shared_ends_and_many_fractions_a_pass_change_no_point() -> None:
    """Deletion's and insertion's ends given once for every map, and the copies of several
    fractions scored in one call, give the points of one fraction at a time; ROAD's imputations
    of several fractions at once keep each fraction's noise."""
    torch.manual_seed(0)
    model = PixelSum(torch.randn(1, 3, 6, 5))
    x = torch.randn(2, 3, 6, 5)
    base = substrate(x, "mean")
    places = ranks(torch.rand(2, 6, 5))
    targets = torch.tensor([0, 1])
    sizes: list[int] = []

    def probabilities(copies: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        sizes.append(len(copies))
        return model(copies).softmax(1).gather(1, wanted[:, None])[:, 0].detach()

    def alone(copies: torch.Tensor) -> torch.Tensor:
        return model(copies).softmax(1).gather(1, targets[:, None])[:, 0].detach()

    ends = (alone(x), alone(base))
    for insertion in (False, True):
        expected = []
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
            gone = removed(places, fraction)[:, None]
            kept = (x, base) if insertion else (base, x)
            expected.append(alone(torch.where(gone, *kept)))
        sizes.clear()
        curve = deletion_curves(x, places, base, targets, 4, insertion, probabilities, ends, 6)
        assert sizes == [6]  # the three fractions between the ends, in one call
        torch.testing.assert_close(curve, torch.stack(expected, 1), rtol=1e-6, atol=1e-7)
    fractions = (0.2, 0.5, 0.8)
    for most_first in (True, False):
        expected = [
            alone(impute(x, removed(places, f, most_first), 0.01, [7 * 1000 + k, 9 * 1000 + k]))
            for k, f in enumerate(fractions)
        ]
        for per_pass in (2, 64):
            curve = road_curves(x, places, targets, most_first, probabilities, [7, 9], fractions,
                                0.01, per_pass)  # fmt: skip
            torch.testing.assert_close(curve, torch.stack(expected, 1))


def test_holes_of_a_curve_and_others_are_imputed_as_alone_and_as_conjugate_gradients() -> None:
    """A curve's nested holes and an unrelated one, solved side by side (threads), each as if
    alone, and as conjugate gradients solve them: the direct solve is exact, not approximate."""
    places = ranks(random_map((1, 30, 40), 2))
    holes = torch.cat([removed(places, f) for f in (0.3, 0.8, 0.5)])
    other = removed(ranks(random_map((1, 30, 40), 3)), 0.4)  # not inside the others
    gone = torch.cat([holes, other])
    image = torch.randn(1, 3, 30, 40, dtype=torch.float64).cumsum(2).expand(4, -1, -1, -1)
    together = impute(image, gone, noise=0.0)
    for i in range(4):
        alone = impute(image[i : i + 1], gone[i : i + 1], noise=0.0)
        np.testing.assert_allclose(together[i].numpy(), alone[0].numpy(), atol=1e-10)
    np.testing.assert_allclose(
        together.numpy(), impute_cg(image, gone, noise=0.0, tolerance=1e-12).numpy(), atol=1e-8
    )
    assert torch.equal(together[~gone[:, None].expand_as(together)],
                       image[~gone[:, None].expand_as(image)])  # fmt: skip


def test_photos_with_the_same_hole_share_one_system_and_are_imputed_as_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The centre baseline removes the same pixels from every photo of a batch: those copies
    are one system, factored once, and each photo is imputed as it is alone (also where the
    photos are solved a few at a time: here 2)."""
    monkeypatch.setattr("saliency.evaluation.road._RHS_IMAGES", 2)
    hole = removed(ranks(centre_map((1, 30, 40))), 0.6)
    other = removed(ranks(random_map((1, 30, 40), 4)), 0.6)
    gone = torch.cat([hole, other, hole, hole])
    assert _same_holes(gone.numpy()) == [[0, 2, 3], [1]]
    images = torch.randn(4, 3, 30, 40, generator=torch.Generator().manual_seed(5)).double()
    together = impute(images.cumsum(2), gone, noise=0.0)
    for i in range(4):
        alone = impute(images[i : i + 1].cumsum(2), gone[i : i + 1], noise=0.0)
        np.testing.assert_allclose(together[i].numpy(), alone[0].numpy(), atol=1e-10)
    assert not torch.equal(together[0], together[2])  # each photo's own pixels


def test_batches_hold_images_of_one_shape_in_order_and_at_most_the_size() -> None:
    """What an evaluation scores together, and what its estimate counts the centre baseline's
    shared ROAD systems by."""
    wide, tall = torch.zeros(3, 4, 6), torch.zeros(3, 6, 4)
    assert batches([wide, tall, wide, wide, tall, wide], 2) == [[0, 2], [3, 5], [1, 4]]
    assert batches([wide] * 3, 64) == [[0, 1, 2]]


def test_copies_scored_by_the_tuned_model_agree_with_the_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip
    with torch.no_grad():  # statistics of its own, so that freezing them is a real change
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    images = [torch.randn(3, 12, 14) for _ in range(2)]
    protocol = Protocol(4, road_fractions=(0.3, 0.7))
    calls: list[int] = []
    model[1].register_forward_hook(lambda *_: calls.append(1))
    plain = evaluate(model, images, ["gradient"], protocol=protocol, tuned=False)
    through_model, calls[:] = len(calls), []
    fast = evaluate(model, images, ["gradient"], protocol=protocol, tuned=True)
    assert 0 < len(calls) < through_model  # the maps' pass alone: the copies went elsewhere
    assert type(model[1]) is nn.BatchNorm2d  # the model itself is left as it was
    for a, b in zip(plain.scores, fast.scores, strict=True):
        assert a["metric"] == b["metric"] and a["value"] == pytest.approx(b["value"], abs=1e-6)


def test_substrates() -> None:
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    mean = substrate(x, "mean")
    assert torch.allclose(mean[:, :, 5, 7], x.mean((2, 3)))
    blurred = substrate(x, "blur")
    assert blurred.shape == x.shape and not torch.equal(blurred, x)
    with pytest.raises(ValueError, match="valid: blur, mean"):
        substrate(x, "zeros")


def test_road_imputes_the_weighted_mean_of_the_neighbours_by_hand() -> None:
    x = torch.arange(9, dtype=torch.float64).reshape(1, 1, 3, 3) ** 2
    centre = torch.zeros(1, 3, 3, dtype=torch.bool)
    centre[0, 1, 1] = True
    v = x[0, 0]
    direct = (v[0, 1] + v[1, 0] + v[1, 2] + v[2, 1]) / 6
    diagonal = (v[0, 0] + v[0, 2] + v[2, 0] + v[2, 2]) / 12
    for solve in (impute, impute_cg):
        assert float(solve(x, centre, noise=0.0)[0, 0, 1, 1]) == pytest.approx(
            float(direct + diagonal), rel=1e-6
        )
    # a corner: its 3 neighbours, the weights renormalized (1/6, 1/6, 1/12 over 5/12)
    corner = torch.zeros(1, 3, 3, dtype=torch.bool)
    corner[0, 0, 0] = True
    expected = (v[0, 1] / 6 + v[1, 0] / 6 + v[1, 1] / 12) / (5 / 12)
    assert float(impute(x, corner, noise=0.0)[0, 0, 0, 0]) == pytest.approx(float(expected))
    # two removed neighbours depend on each other: the 2x2 system solved by hand
    pair = torch.zeros(1, 3, 3, dtype=torch.bool)
    pair[0, 1, 0] = pair[0, 1, 1] = True
    # (1,0): 3 direct and 2 diagonal neighbours (weight 2/3), one of them, (1,1), unknown;
    # (1,1): all 8 (weight 1), one of them, (1,0), unknown
    a_known = v[0, 0] / 6 + v[2, 0] / 6 + v[0, 1] / 12 + v[2, 1] / 12
    corners = (v[0, 0] + v[0, 2] + v[2, 0] + v[2, 2]) / 12
    b_known = v[0, 1] / 6 + v[2, 1] / 6 + v[1, 2] / 6 + corners
    system = torch.tensor([[2 / 3, -1 / 6], [-1 / 6, 1.0]], dtype=torch.float64)
    solution = torch.linalg.solve(system, torch.stack([a_known, b_known]))
    for solve in (impute, impute_cg):
        got = solve(x, pair, noise=0.0)[0, 0, 1, :2]
        np.testing.assert_allclose(got.numpy(), solution.numpy(), rtol=1e-6)


def test_the_road_system_is_the_upper_triangle_of_the_matrix_by_its_definition() -> None:
    """What QDLDL factors: the weight sum on the diagonal, minus a weight for each removed
    neighbour (a pair of them in the 8-neighbourhood), only the upper triangle, rows sorted."""
    hole = removed(ranks(random_map((1, 7, 9), 6)), 0.6)[0].numpy()
    ys, xs = np.nonzero(hole)
    upper, kept = _system(ys, xs, 7, 9)
    weights = WEIGHTS.double().numpy()
    expected = np.zeros((ys.size, ys.size))
    for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
        for j, (v, u) in enumerate(zip(ys, xs, strict=True)):
            if i != j and abs(v - y) <= 1 and abs(u - x) <= 1:
                expected[i, j] = -weights[v - y + 1, u - x + 1]
        inside = weights[max(0, 1 - y) : min(3, 7 - y + 1), max(0, 1 - x) : min(3, 9 - x + 1)]
        expected[i, i] = inside.sum()
    assert upper.has_sorted_indices
    np.testing.assert_allclose(upper.toarray(), np.triu(expected))
    np.testing.assert_array_equal(kept, ~hole)
    with pytest.raises(ValueError, match="row-major"):  # else a column's rows leave the triangle
        _system(ys[::-1], xs[::-1], 7, 9)


def test_road_agrees_with_pytorch_grad_cam() -> None:
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    torch.manual_seed(0)
    image = torch.randn(3, 40, 56).cumsum(1).cumsum(2) / 10
    for values in (centre_map((1, 40, 56)), random_map((1, 40, 56), 3)):
        gone = removed(ranks(values), 0.6)
        theirs = road.NoisyLinearImputer(noise=0.0)(image, (~gone[0]).float())
        ours = impute(image[None], gone, noise=0.0)[0]
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)
        by_gradients = impute_cg(image[None], gone, noise=0.0)[0]
        np.testing.assert_allclose(by_gradients.numpy(), theirs.numpy(), atol=2e-3)


def test_road_noise_is_seeded_per_image_and_only_on_removed_pixels() -> None:
    x = torch.rand(2, 3, 12, 12)
    gone = removed(ranks(random_map((2, 12, 12), 0)), 0.5)
    a = impute(x, gone, 0.01, seeds=[5, 6])
    b = torch.cat(
        [impute(x[:1], gone[:1], 0.01, seeds=[5]), impute(x[1:], gone[1:], 0.01, seeds=[6])]
    )
    assert torch.equal(a, b)
    assert torch.equal(a[:, :, ~gone[0]][0], x[:, :, ~gone[0]][0])


def test_spearman_agrees_with_scipy() -> None:
    from scipy.stats import spearmanr

    a, b = torch.rand(3, 9, 9), torch.rand(3, 9, 9)
    b[1] = a[1] ** 2  # monotone: 1
    b[2] = torch.round(a[2] * 3)  # ties
    ours = spearman(a, b)
    for i in range(3):
        assert float(ours[i]) == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel())[0], abs=1e-6)
    assert float(ours[1]) == pytest.approx(1.0)


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())  # fmt: skip
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def test_evaluate_every_metric_and_baseline_deterministically(tmp_path: Path) -> None:
    from saliency.evaluation.outputs import leaderboard, write_curves, write_scores

    torch.manual_seed(0)
    model = SmallNet().eval()
    images = [torch.randn(3, 20, 24) for _ in range(5)]
    run = lambda size, seed: evaluate(  # noqa: E731
        model, images, ["guided", "gradcam"],
        protocol=Protocol(5, batch_size=size, seed=seed, road_fractions=(0.2, 0.5, 0.8)),
    )  # fmt: skip
    first, second, other = run(2, 0), run(5, 0), run(5, 1)
    assert first.methods == ["guided", "gradcam", "random", "centre"]
    assert len(first.scores) == 5 * 4 * 5 and len(first.curves) == 5 * 4 * (6 + 6 + 3 + 3)
    for result, name in ((first, "a"), (second, "b"), (other, "c")):
        write_scores(result, tmp_path / f"{name}.csv")
        write_curves(result, tmp_path / f"{name}.curves.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.curves.csv").read_bytes() == (tmp_path / "b.curves.csv").read_bytes()
    assert first.values("random", "deletion") != other.values("random", "deletion")
    assert first.values("guided", "deletion") == other.values("guided", "deletion")
    assert all(v == pytest.approx(1.0) for v in first.values("centre", "class_sensitivity"))
    assert all(abs(v) < 0.5 for v in first.values("random", "class_sensitivity"))
    for row in first.curves:
        if row["metric"] in ("deletion", "insertion") and row["fraction"] == 0.0:
            start = row  # deletion starts from the photo, insertion from the substrate
            assert 0.0 <= start["value"] <= 1.0
    standings = leaderboard(first)
    assert {s.metric for s in standings} >= {"road_gap", "deletion"}
    assert sum(s.best for s in standings if s.metric == "deletion") >= 1
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, images, ["guided"], ["pixel_flipping"])
    with pytest.raises(ValueError, match="unknown fill 'grey'; valid: blur, mean"):
        Protocol(fill="grey")
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        Protocol(steps=0)
    with pytest.raises(ValueError, match=r"ROAD fractions must be in \[0, 1\), got \[1.0\]"):
        Protocol(road_fractions=(0.5, 1.0))


@pytest.mark.slow
def test_the_evaluate_command_on_the_sample_photos(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "saliency_cli", "evaluate", str(SAMPLES / "chelsea.png"),
               str(SAMPLES / "coffee.jpg"), "--out", str(out), "--method", "guided",
               "--method", "gradcam", "--metric", "deletion", "--metric", "class_sensitivity",
               "--curve-steps", "5", "--fit", "resize", "--report"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Leaderboard" in done.stdout and "centre" in done.stdout
    lines = (out / "evaluation.csv").read_text().splitlines()
    assert lines[0] == "image,method,metric,value" and len(lines) == 1 + 2 * 4 * 2
    board = json.loads((out / "evaluation.json").read_text())
    assert {r["method"] for r in board["leaderboard"]} == {"guided", "gradcam", "random", "centre"}
    sensitivity = {r["method"]: r["mean"] for r in board["leaderboard"]
                   if r["metric"] == "class_sensitivity"}  # fmt: skip
    assert sensitivity["guided"] > sensitivity["gradcam"]  # Guided Backprop ignores the class
    assert (out / "evaluation.png").stat().st_size > 0
    assert "Leaderboard" in (out / "report.html").read_text()
    bad = subprocess.run(command[:5] + ["--out", str(out), "--contrast", "topk:2"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "--contrast takes one class" in bad.stderr
