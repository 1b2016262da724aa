"""Model-randomization sanity checks on tiny models: steps, metrics, determinism, side effects."""

import copy

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from saliency import explain
from saliency.checks.sanity import (
    randomization_steps,
    randomize,
    resettable_layers,
    run_sanity,
    verdicts,
)
from saliency.checks.sanity_metrics import compare_maps, rank_correlation
from saliency.checks.sanity_plots import CSV_COLUMNS, plot_metrics, plot_strip, write_csv


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


def images(count=3, size=32):
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(3, size, size, generator=generator) for _ in range(count)]


def test_a_map_compared_with_itself_scores_1_and_with_a_random_map_about_0():
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(3, 72, 72, generator=generator), 9, 1)
    assert all(v == pytest.approx(1.0) for v in compare_maps(smooth, smooth).values())
    noise = torch.randn(smooth.shape, generator=generator)
    scores = compare_maps(smooth, noise)
    assert abs(scores["spearman_abs"]) < 0.1 and abs(scores["spearman"]) < 0.1
    assert abs(scores["ssim"]) < 0.1 and abs(scores["hog"]) < 0.3


def test_rank_correlation_is_scipys_spearman_with_ties_and_constant_maps():
    """Ranked with NumPy (SciPy's import cost every command 0.4 s): the same coefficient as
    ``scipy.stats.spearmanr``, ties given average ranks, 0 for a constant map."""
    from scipy.stats import spearmanr

    generator = np.random.default_rng(0)
    for case in range(40):
        size = int(generator.integers(2, 400))
        if case % 2:  # few distinct values: long runs of ties, as in sparse or clipped maps
            a, b = (generator.integers(0, 4, size).astype(float) for _ in range(2))
        else:
            a, b = generator.normal(size=size), generator.normal(size=size)
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert rank_correlation(np.zeros((4, 4)), generator.normal(size=(4, 4))) == 0.0


def test_randomizing_the_last_layer_changes_gradient_maps():
    model = tiny()
    result = run_sanity(model, images(), ["a", "b", "c"], ["gradient"], granularity="layer")
    assert [s.name for s in result.steps] == ["7", "3", "1", "0"]  # logits first
    after_logits = result.values("gradient", "spearman_abs")[:, 0]
    assert (after_logits < 0.9).all()
    assert result.baseline("gradient", "spearman_abs").max() < 0.1


def test_layers_run_order_and_stages_of_real_models():
    x = torch.zeros(1, 3, 64, 64)
    resnet = torchvision.models.resnet18(num_classes=3).eval()
    stages = [s.name for s in randomization_steps(resnet, x, "stage")]
    assert stages == [
        "fc", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0",
        "layer1.1", "layer1.0", "bn1", "conv1",
    ]  # fmt: skip
    layers = resettable_layers(resnet, x)
    assert layers[0] == "conv1" and layers[-1] == "fc" and len(layers) == 41
    vgg = torchvision.models.vgg11(num_classes=3).eval()
    steps = [s.name for s in randomization_steps(vgg, x, "stage")]
    assert steps[:4] == ["classifier.6", "classifier.3", "classifier.0", "features.18"]
    assert steps[-1] == "features.0"
    with pytest.raises(ValueError, match="granularity"):
        randomization_steps(vgg, x, "block")


def test_deterministic_under_seed_and_leaves_model_and_rng_alone():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    first = run_sanity(model, images(2), ["a", "b"], ["gradient", "guided"], seed=5)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = run_sanity(model, images(2), ["a", "b"], ["gradient", "guided"], seed=5)
    other = run_sanity(model, images(2), ["a", "b"], ["gradient", "guided"], seed=6)
    assert first.rows == again.rows
    assert first.rows != other.rows


def test_independent_randomization_restores_each_step():
    model = tiny()
    inputs = images(2)
    independent = run_sanity(model, inputs, ["a", "b"], ["gradient"], mode="independent",
                             granularity="layer", seed=3)  # fmt: skip
    cascading = run_sanity(model, inputs, ["a", "b"], ["gradient"], granularity="layer", seed=3)
    ind = independent.values("gradient", "spearman_abs")
    cas = cascading.values("gradient", "spearman_abs")
    np.testing.assert_allclose(ind[:, 0], cas[:, 0])  # step 1 is the same in both modes
    assert not np.allclose(ind[:, 1:], cas[:, 1:])  # later steps are not cumulative
    # the last step alone (the first conv, seed 3 + 4) on an untouched copy gives the same maps
    alone = copy.deepcopy(model)
    randomize(alone, independent.steps[-1], 3 + 4)
    batch = torch.stack(inputs)
    original = explain(model, batch, "gradient").maps
    changed = explain(alone, batch, "gradient", target=independent.classes[0]).maps
    expected = [compare_maps(original[i], changed[i])["spearman_abs"] for i in range(2)]
    np.testing.assert_allclose(ind[:, -1], expected, rtol=1e-6)


def test_explained_class_is_the_original_prediction_unless_repredicted():
    model = tiny()
    inputs = images(3)
    fixed = run_sanity(model, inputs, ["a", "b", "c"], ["gradient"], granularity="layer")
    again = run_sanity(model, inputs, ["a", "b", "c"], ["gradient"], granularity="layer",
                       repredict=True)  # fmt: skip
    assert all(step == fixed.classes[0] for step in fixed.classes)
    assert again.classes[0] == fixed.classes[0]
    assert any(step != again.classes[0] for step in again.classes[1:])  # randomized top-1 moved
    assert fixed.rows != again.rows
    gradcam = run_sanity(model, inputs, ["a", "b", "c"], ["gradcam", "integrated_gradients"],
                         options=None, normalization=((0.5,) * 3, (0.5,) * 3))  # fmt: skip
    assert {row["method"] for row in gradcam.rows} == {"gradcam", "integrated_gradients"}


def test_outputs_csv_figures_and_verdicts(tmp_path):
    model = tiny()
    result = run_sanity(model, images(2), ["x/a.png", "b.png"], ["gradient", "guided"])
    write_csv(result, tmp_path / "sanity.csv")
    lines = (tmp_path / "sanity.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    steps = len(result.steps)
    assert len(lines) == 1 + 2 * 2 * (steps + 1) * 4
    cells = [line.split(",") for line in lines[1:]]
    assert {c[4] for c in cells} == {"spearman_abs", "spearman", "ssim", "hog"}
    assert sorted({int(c[2]) for c in cells}) == list(range(steps + 1))
    plot_metrics(result, tmp_path / "sanity.png")
    plot_strip(result, "x/a.png", tmp_path / "strips" / "x" / "a.pdf")
    assert (tmp_path / "sanity.png").stat().st_size > 10_000
    assert (tmp_path / "strips" / "x" / "a.pdf").read_bytes().startswith(b"%PDF")
    found = {v.method: v for v in verdicts(result, threshold=0.5)}
    assert set(found) == {"gradient", "guided"}
    last = result.values("gradient", "spearman_abs")[:, -1].mean()
    assert found["gradient"].last[0] == pytest.approx(last)
    assert found["gradient"].passes == (last < 0.5)
