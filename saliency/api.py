"""The two verbs: :func:`explain` one method for a batch, :func:`explain_batch` many methods and
target sets of a batch, sharing every pass that can be shared."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .engine.objectives import Target
from .engine.options import MethodOptions
from .engine.planner import Choose, run_plan
from .engine.registry import get_method
from .engine.smoothing import smoothed
from .engine.targets import TargetLike, targets_and_check
from .errors import RuleCoverageWarning
from .explanation import Explanation
from .models.loading import LoadedModel


def explain_batch(
    model: nn.Module | LoadedModel,
    inputs: torch.Tensor,
    methods: Sequence[str],
    choose: Choose,
    options: MethodOptions | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Explanation]]]:
    """Every method for every target set of a batch, sharing passes wherever they can be shared.

    This is the engine the command uses. Without SmoothGrad one forward pass serves every
    method with shared passes; methods with passes of their own (Integrated Gradients, the
    perturbation methods) run them ``options.batch_size`` inputs a pass, shared by all target
    sets. With SmoothGrad every method runs on the noisy copies, batched, and their maps are
    averaged.

    Args:
        model: A classifier returning logits (B, K), or a ``LoadedModel`` (whose normalization
            then defines the black baseline).
        inputs: The preprocessed batch (B, C, H, W).
        methods: Registered methods' names (see [saliency.method_names][]).
        choose: Turns the clean logits into target sets, each a LongTensor (B,).
        options: SmoothGrad, the batch size of expanded passes, and the methods' settings.
        normalization: (mean, std) of the model's preprocessing, for the black baseline.
        should_stop: Asked between the passes of an expanded batch; when it turns true the work
            is dropped.

    Returns:
        The clean logits, and per target set a dict of each method's ``Explanation``.

    Raises:
        ValueError: An unknown method, or a setting that is bad or that none of the methods has.
        RuleError: A compiled or scripted graph, where a rule cannot reach the units.
        saliency.engine.passes.Stopped: ``should_stop`` turned true.
    """
    if isinstance(model, LoadedModel):
        normalization = normalization or model.normalization
        model = model.model
    chosen = [get_method(m) for m in methods]
    options = (options or MethodOptions()).check(chosen)
    run = smoothed if options.smooth else run_plan
    return run(model, inputs, chosen, choose, options, normalization, should_stop)


def explain(
    model: nn.Module | LoadedModel,
    inputs: torch.Tensor,
    method: str = "guided",
    target: TargetLike | Target = None,
    *,
    smooth: int = 0,
    noise: float = 0.15,
    seed: int = 0,
    batch_size: int = 32,
    **settings: Any,
) -> Explanation:
    """Saliency maps of ``model`` for a batch of preprocessed ``inputs``.

    One forward and one backward pass serve the whole batch, each sample with its own target
    (methods that perturb the input run their copies ``batch_size`` at a time). The model is
    left exactly as it was: train or eval mode, ``requires_grad``, ``.grad``, buffers.
    On a CPU, a batch-normed CNN runs 1.1 to 1.5 times faster tuned ([saliency.tuned][]: make
    the copy once, reuse it), with the same maps to float32 rounding (not for LRP).

    Args:
        model: Any classifier returning logits (B, K), any model whose output a target object
            scores (a segmentation's (B, C, H, W), also as ``{"out": ...}``; an embedding
            (B, D)), or the ``LoadedModel`` from
            [saliency.load_model][] (needed for the black baseline of Integrated Gradients and
            Occlusion, and for LRP's z-box bounds, which come from its normalization).
        inputs: The preprocessed batch (B, C, H, W).
        method: A registered method's name, case-insensitive: ``gradient``, ``deconvnet``,
            ``guided``, ``gradcam``, ``guided_gradcam``, ``integrated_gradients``,
            ``gradient_x_input``, the CAM family (``gradcam_plus_plus``, ``xgradcam``,
            ``layercam``, ``hirescam``, ``eigencam``, ``scorecam``), ``occlusion``, ``rise``,
            the LRP composites (``lrp_epsilon_plus``, ``lrp_epsilon_plus_flat``,
            ``lrp_epsilon_gamma_box``, ``lrp_epsilon_alpha2_beta1_flat``) or a plugin's (see
            [saliency.method_names][]).
        target: What to explain: ``None`` (each sample's top-1 class), a class (an int, or B
            ints), or a target object for any other output: [saliency.RegionTarget][] (a
            class over a region of a segmentation), [saliency.SimilarityTarget][] (an
            embedding's similarity to a reference), [saliency.ScoreTarget][] (your own
            score) or a [saliency.Target][] subclass.
        smooth: SmoothGrad's number of noisy copies to average the map over (0: off).
        noise: SmoothGrad's noise, its standard deviation as a fraction of each input's range.
        seed: Fixes SmoothGrad's draws and RISE's masks.
        batch_size: The most inputs per pass of an expanded batch (noisy copies, path points,
            masked or occluded copies).
        **settings: The method's own settings (``saliency methods`` lists them): ``layer`` for
            the CAM methods (default: the last feature-map stage, found automatically);
            ``steps`` and ``baseline`` (``black``, ``zero``, ``blurred`` or a tensor) for
            Integrated Gradients; ``window``, ``stride`` and ``baseline`` for Occlusion;
            ``masks``, ``cells`` and ``p`` for RISE; ``epsilon`` for LRP, with ``gamma``,
            ``low`` and ``high`` or ``alpha`` and ``beta``.

    Returns:
        The maps, targets and logits of the batch. ``maps`` has the inputs' shape for the
        methods that reach the input, (B, 1, H, W) for the CAM and perturbation methods.

    Raises:
        ValueError: An unknown method (listing the valid names), a bad target, a setting the
            method does not have or a bad value (saying what is accepted), or a ``layer`` that
            is not a feature-map layer (listing the candidates).
        RuleError: Part of the graph is compiled or scripted, where a rule cannot reach.

    Warns:
        RuleCoverageWarning: A changing rule found no unit or left other activations with
            their plain gradient, or LRP found layers without a rule (saying what was done).

    Example:
        ```python
        import torch, torchvision
        from saliency import explain

        model = torchvision.models.resnet18()
        result = explain(model, torch.randn(2, 3, 224, 224), "gradcam", layer="layer3")
        result.maps.shape  # (2, 1, 224, 224)
        ```
    """
    chosen = get_method(method)
    options = MethodOptions(smooth, noise, seed, batch_size, settings)
    checks: list[Callable[[], None]] = []

    def choose(logits: torch.Tensor) -> list[torch.Tensor | Target]:
        if isinstance(target, Target):
            return [target]
        targets, check = targets_and_check(target, logits)
        checks.append(check)
        return [targets]

    _, (results,) = explain_batch(model, inputs, [chosen.name], choose, options)
    for check in checks:
        check()
    result = results[chosen.name]
    message = result.report.warning()
    if message:
        warnings.warn(message, RuleCoverageWarning, stacklevel=2)
    return result
