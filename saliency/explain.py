"""``explain()``: the methods on one engine, a whole batch at a time.

One forward pass serves every single-pass method and target; SmoothGrad's noisy copies and
Integrated Gradients' path points are batched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RuleCoverageWarning
from .hooks import GraphUnits, RuleHooks, RuleReport, find_units
from .integrated import baseline_kind, make_baseline, quadrature
from .layers import LayerCapture, resolve_layer
from .methods import Method, get_method
from .models import LoadedModel
from .rules import Rule, get_rule
from .smoothgrad import check_smooth, noise_samples, noise_scale
from .state import check_eager, explanation_mode

Target = int | Sequence[int] | torch.Tensor | None


@dataclass
class Explanation:
    """Saliency maps for a batch.

    ``maps`` has the inputs' dtype and device. For the rule methods it is d score[target] / d
    input under the rule, with the inputs' shape and no post-processing; for ``gradcam`` it is
    (B, 1, H, W), the CAM upsampled to the input's height and width. ``targets`` holds the
    explained class of each sample, ``logits`` the model's (detached) output on the clean inputs,
    ``report`` where a ReLU rule was applied (empty when none changes the gradient).

    ``layer`` is the Grad-CAM layer, ``smooth`` the number of SmoothGrad samples (0: none). For
    ``integrated_gradients``, ``score_difference`` is score(input) - score(baseline) and
    ``completeness`` the sum of the attributions minus that difference (0 for the exact
    integral; averaged over the noisy copies under SmoothGrad).
    """

    maps: torch.Tensor
    targets: torch.Tensor
    logits: torch.Tensor
    method: str
    report: RuleReport
    layer: str | None = None
    smooth: int = 0
    completeness: torch.Tensor | None = None
    score_difference: torch.Tensor | None = None

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the logits, (B, K)."""
        return self.logits.softmax(dim=1)


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Turn ``target`` into one class index per sample, a LongTensor (B,) on the logits' device.

    ``None`` means each sample's top-1 class; an int one class for all; a sequence or tensor one
    class per sample. Raises ``ValueError`` for a wrong length or an index out of range.
    """
    targets, check = _targets(target, logits)
    check()
    return targets


def _targets(target: Target, logits: torch.Tensor) -> tuple[torch.Tensor, Callable[[], None]]:
    """The targets, and the range check to run. For a tensor already on a GPU the check is left to
    the caller to run once the backward pass is queued (checking at once would stall the GPU),
    and the indices are clamped meanwhile so that a bad one cannot fault the device."""
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1), lambda: None
    if isinstance(target, bool):
        raise ValueError("target must be None, an int or a sequence of ints, not a bool")
    if isinstance(target, int):
        targets = torch.full((batch,), target, dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            dtype = target.dtype
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise ValueError(f"target tensor must hold integers, not {target.dtype}")
            targets = target.detach().reshape(-1).long()
        else:
            values = list(target)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ValueError("target must be None, an int or a sequence of ints")
            targets = torch.tensor(values, dtype=torch.long)
        if targets.numel() != batch:
            raise ValueError(f"target has {targets.numel()} entries for a batch of {batch}")

    def check(targets: torch.Tensor = targets) -> None:
        bad = (targets < 0) | (targets >= classes)
        if bool(bad.any()):
            raise ValueError(
                f"target {int(targets[bad][0])} is out of range: valid classes are 0..{classes - 1}"
            )

    if targets.device.type == "cpu":
        check()
        return targets.to(logits.device), lambda: None
    return targets.to(logits.device).clamp(0, classes - 1), check


class ForwardPass:
    """The graph of one forward pass, reusable for several methods and targets.

    Each rule is one backward pass over the input; Grad-CAM adds one backward pass that stops at
    its layer. Methods that need the same pass share it.
    """

    def __init__(
        self, inputs: torch.Tensor, logits: torch.Tensor, capture: LayerCapture | None = None
    ) -> None:
        self.inputs = inputs
        self.logits = logits
        self.capture = capture
        self._units: GraphUnits | None = None

    @property
    def units(self) -> GraphUnits:
        """The ReLU-family units of the graph, found once."""
        if self._units is None:
            self._units = find_units(self.logits)
        return self._units

    @property
    def layer(self) -> str | None:
        """The name of the captured Grad-CAM layer, if any."""
        return self.capture.name if self.capture is not None else None

    def explain(
        self, method: str | Rule | Method, targets: torch.Tensor, *, retain_graph: bool = True
    ) -> Explanation:
        """Maps for ``targets`` (LongTensor (B,)) under ``method``; keep the graph unless told."""
        name = method.name if isinstance(method, (Rule, Method)) else method
        (result,) = self.explain_many([name], targets, retain_graph=retain_graph).values()
        return result

    def explain_many(
        self, methods: Sequence[str], targets: torch.Tensor, *, retain_graph: bool = True
    ) -> dict[str, Explanation]:
        """Maps for ``targets`` under each of ``methods`` (not ``integrated_gradients``, which
        needs forward passes of its own), sharing backward passes where methods allow."""
        chosen = [get_method(m) for m in methods]
        for method in chosen:
            if method.path:
                raise ValueError(f"{method.name} needs forward passes of its own: use explain()")
            if method.uses_layer and self.capture is None:
                raise ValueError(f"{method.name} needs a layer: forward_pass(..., layer=...)")
        passes = ["cam"] if any(m.uses_layer for m in chosen) else []
        passes += list(dict.fromkeys(m.rule for m in chosen if m.rule is not None))
        grads: dict[str, tuple[torch.Tensor, RuleReport]] = {}
        cam = None
        for n, step in enumerate(passes):
            keep = retain_graph or n < len(passes) - 1
            if step == "cam":
                cam = self._gradcam(targets, keep)
            else:
                grads[step] = self._rule_pass(get_rule(step), targets, keep)
        logits = self.logits.detach()
        results = {}
        for method in chosen:
            maps, report = grads[method.rule] if method.rule else (cam, RuleReport("gradient"))
            if method.name == "gradient_x_input":
                maps = maps * self.inputs.detach()
            elif method.name == "guided_gradcam":
                maps = maps * cam
            layer = self.layer if method.uses_layer else None
            results[method.name] = Explanation(maps, targets, logits, method.name, report, layer)
        return results

    def _rule_pass(
        self, rule: Rule, targets: torch.Tensor, keep: bool
    ) -> tuple[torch.Tensor, RuleReport]:
        units = self.units if rule.changes_gradient else GraphUnits()
        with RuleHooks(self.logits, rule, units) as report:
            score = self.logits.gather(1, targets.view(-1, 1)).sum()
            (maps,) = torch.autograd.grad(score, self.inputs, retain_graph=keep)
        return maps, report

    def _gradcam(self, targets: torch.Tensor, keep: bool) -> torch.Tensor:
        assert self.capture is not None
        activation = self.capture.activation()
        score = self.logits.gather(1, targets.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(score, activation, retain_graph=keep)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = (weights * activation.detach()).sum(dim=1, keepdim=True).clamp(min=0)
        size = tuple(self.inputs.shape[-2:])
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)


def _check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a float tensor (B, C, H, W); got {shape}")
    check_eager(model)


def _check_logits(logits: object, batch: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != batch:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape (B, K) for B={batch}; got {got}")
    return logits


@contextmanager
def forward_pass(
    model: nn.Module, inputs: torch.Tensor, layer: str | None = None, *, capture: bool = False
) -> Iterator[ForwardPass]:
    """Run ``model`` on ``inputs`` in explanation mode and keep the graph for the block.

    With ``capture``, the output of ``layer`` (None: the default Grad-CAM layer, see
    :mod:`saliency.layers`) is kept for Grad-CAM. The model runs in eval mode with frozen
    parameters; its train flags and ``requires_grad`` are restored when the block ends, also on
    an exception. Works inside ``torch.no_grad()``.
    """
    _check_inputs(model, inputs)
    if layer is not None and not capture:
        raise ValueError("a layer is used only by gradcam and guided_gradcam")
    with torch.inference_mode(False), torch.enable_grad(), explanation_mode(model):
        x = inputs.detach().requires_grad_(True)
        with ExitStack() as stack:
            hold = None
            if capture:
                name = resolve_layer(model, x.detach(), layer)
                hold = stack.enter_context(LayerCapture(model, name))
            logits = _check_logits(model(x), x.shape[0])
        yield ForwardPass(x, logits, hold)


def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The model's logits for ``inputs`` in explanation mode, without gradients, in batches."""
    _check_inputs(model, inputs)
    with torch.no_grad(), explanation_mode(model):
        return torch.cat(
            [_check_logits(model(part), len(part)) for part in inputs.detach().split(batch_size)]
        )


@dataclass(frozen=True)
class MethodOptions:
    """Settings of the methods beyond the rule: Grad-CAM's ``layer`` (None: the default),
    SmoothGrad's ``smooth`` samples (0: off), ``noise`` (fraction of each input's range) and
    ``seed``, Integrated Gradients' ``steps`` and ``baseline``, and ``batch_size``, the most
    inputs per pass when SmoothGrad or Integrated Gradients expand the batch."""

    layer: str | None = None
    smooth: int = 0
    noise: float = 0.15
    seed: int = 0
    steps: int = 32
    baseline: str | torch.Tensor = "black"
    batch_size: int = 32

    def check(self, methods: Sequence[Method]) -> None:
        """Raise ``ValueError`` for a bad setting, or a layer that no chosen method uses."""
        check_smooth(self.smooth, self.noise)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(f"batch_size must be a whole number, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        quadrature(self.steps)  # validates steps
        if isinstance(self.baseline, str):
            baseline_kind(self.baseline)  # validates the name
        if self.layer is not None and not any(m.uses_layer for m in methods):
            raise ValueError("a layer is used only by gradcam and guided_gradcam")


def explain_batch(
    model: nn.Module,
    inputs: torch.Tensor,
    methods: Sequence[str],
    choose: Callable[[torch.Tensor], list[torch.Tensor]],
    options: MethodOptions = MethodOptions(),
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Explanation]]]:
    """Every method for every target set of a batch, sharing passes wherever they can be shared.

    ``choose`` turns the clean logits into target sets (LongTensors (B,)); returns the logits
    and, per target set, the explanation of each method. Without SmoothGrad one forward pass
    serves every method but Integrated Gradients, whose path points run in batches of
    ``options.batch_size`` (shared by all target sets). With SmoothGrad every method runs on the
    noisy copies, batched, and their maps are averaged. ``normalization`` (mean, std) defines the
    black baseline. ``should_stop`` is asked between the passes of an expanded batch; when it
    turns true the work is dropped and :class:`Stopped` raised.
    """
    chosen = [get_method(m) for m in methods]
    options.check(chosen)
    direct = [m.name for m in chosen if not m.path]
    path = any(m.path for m in chosen)
    capture = any(m.uses_layer for m in chosen)
    if not options.smooth:
        if direct:
            with forward_pass(model, inputs, options.layer, capture=capture) as graph:
                logits = graph.logits.detach()
                target_sets = choose(logits)
                results = [
                    graph.explain_many(direct, t, retain_graph=n < len(target_sets) - 1)
                    for n, t in enumerate(target_sets)
                ]
        else:
            logits = predict(model, inputs, options.batch_size)
            target_sets = choose(logits)
            results = [{} for _ in target_sets]
        if path:
            baselines = make_baseline(inputs, options.baseline, normalization)
            paths = _integrated(
                model, inputs.detach(), baselines, target_sets, options, should_stop, logits
            )
            for result, (maps, difference, error), t in zip(
                results, paths, target_sets, strict=True
            ):
                result["integrated_gradients"] = Explanation(
                    maps,
                    t,
                    logits,
                    "integrated_gradients",
                    RuleReport("gradient"),
                    completeness=error,
                    score_difference=difference,
                )
        return logits, [{m.name: r[m.name] for m in chosen} for r in results]
    return _smoothed(model, inputs, chosen, choose, options, normalization, should_stop)


class Stopped(Exception):
    """``should_stop`` turned true in the middle of an expanded batch."""


def _expanded(
    batch: int,
    copies: int,
    size: int,
    device: torch.device,
    should_stop: Callable[[], bool] | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``batch`` x ``copies`` rows of an expanded batch, ``size`` rows a pass: for each pass,
    the input each row copies and the row's copy number. Raises :class:`Stopped` between passes
    once ``should_stop()`` turns true."""
    total = batch * copies
    for start in range(0, total, size):
        if should_stop is not None and should_stop():
            raise Stopped
        rows = torch.arange(start, min(start + size, total), device=device)
        yield rows // copies, rows % copies


def _integrated(
    model: nn.Module,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    target_sets: list[torch.Tensor],
    options: MethodOptions,
    should_stop: Callable[[], bool] | None = None,
    at_input: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per target set: attributions, score difference and completeness error, (B, ...), (B,), (B,).

    The B x steps path points run in passes of ``options.batch_size``; each pass's forward serves
    every target set. ``at_input``: the logits of ``inputs`` when the caller has them already."""
    alphas, weights = quadrature(options.steps, inputs.device)
    sums = [torch.zeros_like(inputs) for _ in target_sets]
    delta = inputs - baselines
    rule = get_rule("gradient")
    for sample, k in _expanded(
        inputs.shape[0], options.steps, options.batch_size, inputs.device, should_stop
    ):
        alpha = alphas[k].to(inputs.dtype).view(-1, 1, 1, 1)
        weight = weights[k].to(inputs.dtype).view(-1, 1, 1, 1)
        points = baselines[sample] + alpha * delta[sample]
        with forward_pass(model, points) as graph:
            for n, targets in enumerate(target_sets):
                keep = n < len(target_sets) - 1
                grads, _ = graph._rule_pass(rule, targets[sample], keep)
                sums[n].index_add_(0, sample, grads * weight)
    if at_input is None:
        at_input = predict(model, inputs, options.batch_size)
    at_baseline = predict(model, baselines, options.batch_size)
    results = []
    for total_grad, targets in zip(sums, target_sets, strict=True):
        maps = delta * total_grad
        column = targets.view(-1, 1)
        difference = (at_input.gather(1, column) - at_baseline.gather(1, column))[:, 0]
        error = maps.flatten(1).sum(dim=1) - difference
        results.append((maps, difference, error))
    return results


def _smoothed(
    model: nn.Module,
    inputs: torch.Tensor,
    chosen: list[Method],
    choose: Callable[[torch.Tensor], list[torch.Tensor]],
    options: MethodOptions,
    normalization: tuple[Sequence[float], Sequence[float]] | None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Explanation]]]:
    """SmoothGrad over ``chosen``: targets from the clean inputs, maps averaged over
    ``options.smooth`` noisy copies per input, run in passes of ``options.batch_size``."""
    inputs = inputs.detach()
    count = options.smooth
    logits = predict(model, inputs, options.batch_size)
    target_sets = choose(logits)
    direct = [m.name for m in chosen if not m.path]
    path = any(m.path for m in chosen)
    capture = any(m.uses_layer for m in chosen)
    draws = noise_samples(tuple(inputs.shape[1:]), count, options.seed).to(
        inputs.device, inputs.dtype
    )
    sigma = noise_scale(inputs, options.noise)
    baselines = make_baseline(inputs, options.baseline, normalization) if path else None
    sums: list[dict[str, torch.Tensor]] = [{} for _ in target_sets]
    reports: dict[str, RuleReport] = {}
    layer = None
    errors = [torch.zeros(inputs.shape[0], device=inputs.device) for _ in target_sets]
    differences = [torch.zeros(inputs.shape[0], device=inputs.device) for _ in target_sets]
    for sample, copy in _expanded(
        inputs.shape[0], count, options.batch_size, inputs.device, should_stop
    ):
        noisy = inputs[sample] + sigma[sample] * draws[copy]
        parts: list[dict[str, tuple[torch.Tensor, RuleReport]]] = [{} for _ in target_sets]
        noisy_logits = None
        if direct:
            with forward_pass(model, noisy, options.layer, capture=capture) as graph:
                layer = graph.layer
                noisy_logits = graph.logits.detach()
                for n, targets in enumerate(target_sets):
                    keep = n < len(target_sets) - 1
                    for name, result in graph.explain_many(
                        direct, targets[sample], retain_graph=keep
                    ).items():
                        parts[n][name] = (result.maps, result.report)
        if path:
            assert baselines is not None
            chunk = [t[sample] for t in target_sets]
            found = _integrated(
                model, noisy, baselines[sample], chunk, options, should_stop, noisy_logits
            )
            for n, (maps, difference, error) in enumerate(found):
                parts[n]["integrated_gradients"] = (maps, RuleReport("gradient"))
                errors[n].index_add_(0, sample, error.to(errors[n].dtype) / count)
                differences[n].index_add_(0, sample, difference.to(errors[n].dtype) / count)
        for n, found_maps in enumerate(parts):
            for name, (maps, report) in found_maps.items():
                reports.setdefault(name, report)
                if name not in sums[n]:
                    sums[n][name] = torch.zeros(
                        (inputs.shape[0], *maps.shape[1:]), dtype=maps.dtype, device=maps.device
                    )
                sums[n][name].index_add_(0, sample, maps / count)
    results = []
    for n, targets in enumerate(target_sets):
        result = {}
        for method in chosen:
            name = method.name
            extra = (
                {"completeness": errors[n], "score_difference": differences[n]}
                if method.path
                else {}
            )
            result[name] = Explanation(
                sums[n][name],
                targets,
                logits,
                name,
                reports[name],
                layer if method.uses_layer else None,
                count,
                **extra,
            )
        results.append(result)
    return logits, results


def explain(
    model: nn.Module | LoadedModel,
    inputs: torch.Tensor,
    method: str = "guided",
    target: Target = None,
    *,
    layer: str | None = None,
    smooth: int = 0,
    noise: float = 0.15,
    steps: int = 32,
    baseline: str | torch.Tensor = "black",
    batch_size: int = 32,
    seed: int = 0,
) -> Explanation:
    """Saliency maps of ``model`` for a batch of preprocessed ``inputs`` (B, C, H, W).

    ``method`` is one of :data:`saliency.METHODS` (case-insensitive): ``gradient``,
    ``deconvnet``, ``guided``, ``gradcam``, ``guided_gradcam``, ``integrated_gradients`` or
    ``gradient_x_input``. ``target`` is ``None`` (top-1 of each sample), an int, or B ints.

    ``layer`` names the Grad-CAM layer (default: the last feature-map stage, found
    automatically; an unknown name raises ``ValueError`` listing the candidates). ``smooth=N``
    averages the map over N noisy copies (SmoothGrad; ``noise`` is the noise's standard
    deviation as a fraction of each input's range; ``seed`` fixes the draws). ``steps`` and
    ``baseline`` (``black``, ``zero``, ``blurred`` or a tensor) set up Integrated Gradients;
    ``black`` needs the normalization, so pass the :class:`LoadedModel` from ``load_model``.
    Expanded batches (noisy copies, path points) run ``batch_size`` inputs per pass.

    Warns (:class:`RuleCoverageWarning`) when a changing rule found no unit or left other
    activations with their plain gradient.
    """
    normalization = None
    if isinstance(model, LoadedModel):
        normalization = (model.preprocessing.mean, model.preprocessing.std)
        model = model.model
    chosen = get_method(method)
    options = MethodOptions(layer, smooth, noise, seed, steps, baseline, batch_size)
    checks: list[Callable[[], None]] = []

    def choose(logits: torch.Tensor) -> list[torch.Tensor]:
        targets, check = _targets(target, logits)
        checks.append(check)
        return [targets]

    _, (results,) = explain_batch(model, inputs, [chosen.name], choose, options, normalization)
    for check in checks:
        check()
    result = results[chosen.name]
    message = result.report.warning()
    if message:
        warnings.warn(message, RuleCoverageWarning, stacklevel=2)
    return result
