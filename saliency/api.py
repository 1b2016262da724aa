"""The two verbs: :func:`explain` one method for a batch, :func:`explain_batch` many methods and
target sets of a batch, sharing every pass that can be shared."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .engine.options import MethodOptions
from .engine.planner import Choose, run_plan
from .engine.registry import get_method
from .engine.smoothing import smoothed
from .engine.targets import Target, targets_and_check
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

    ``choose`` turns the clean logits into target sets (LongTensors (B,)); returns the logits
    and, per target set, the explanation of each method. Without SmoothGrad one forward pass
    serves every method with shared passes; methods with passes of their own (Integrated
    Gradients) run them ``options.batch_size`` inputs a pass, shared by all target sets. With
    SmoothGrad every method runs on the noisy copies, batched, and their maps are averaged.
    ``normalization`` (mean, std) defines the black baseline (taken from a
    :class:`LoadedModel` when one is given). ``should_stop`` is asked between the passes of an
    expanded batch; when it turns true the work is dropped and
    :class:`saliency.engine.passes.Stopped` raised.
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
    target: Target = None,
    *,
    smooth: int = 0,
    noise: float = 0.15,
    seed: int = 0,
    batch_size: int = 32,
    **settings: Any,
) -> Explanation:
    """Saliency maps of ``model`` for a batch of preprocessed ``inputs`` (B, C, H, W).

    ``method`` is a registered method's name (case-insensitive; see
    :func:`saliency.method_names`): ``gradient``, ``deconvnet``, ``guided``, ``gradcam``,
    ``guided_gradcam``, ``integrated_gradients``, ``gradient_x_input``, the CAM family
    (``gradcam_plus_plus``, ``xgradcam``, ``layercam``, ``hirescam``, ``eigencam``,
    ``scorecam``), ``occlusion``, ``rise``, the LRP composites (``lrp_epsilon_plus``,
    ``lrp_epsilon_plus_flat``, ``lrp_epsilon_gamma_box``, ``lrp_epsilon_alpha2_beta1_flat``) or
    a plugin's.
    ``target`` is ``None`` (top-1 of each sample), an int, or B ints.

    ``smooth=N`` averages the map over N noisy copies (SmoothGrad; ``noise`` is the noise's
    standard deviation as a fraction of each input's range; ``seed`` fixes the draws, and
    RISE's masks). Expanded batches (noisy copies, path points, masked or occluded copies) run
    ``batch_size`` inputs per pass.

    Every other keyword is one of the method's own settings (``saliency methods`` lists them):
    ``layer`` for the CAM methods (default: the last feature-map stage, found automatically;
    an unknown name raises ``ValueError`` listing the candidates); ``steps`` and ``baseline``
    (``black``, ``zero``, ``blurred`` or a tensor) for Integrated Gradients, whose ``black``
    needs the normalization, so pass the :class:`LoadedModel` from ``load_model`` (as does
    occlusion's, with ``window`` and ``stride``); ``masks``, ``cells`` and ``p`` for RISE;
    ``epsilon`` and ``bias`` for LRP, with ``gamma``, ``low`` and ``high`` (the z-box bounds,
    from the normalization unless given) or ``alpha`` and ``beta``. A bad value, or a setting
    the method does not have, raises ``ValueError`` saying what is accepted.

    Warns (:class:`RuleCoverageWarning`) when a changing rule found no unit or left other
    activations with their plain gradient, and when LRP found layers without a rule (saying
    what was done with them).
    """
    chosen = get_method(method)
    options = MethodOptions(smooth, noise, seed, batch_size, settings)
    checks: list[Callable[[], None]] = []

    def choose(logits: torch.Tensor) -> list[torch.Tensor]:
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
