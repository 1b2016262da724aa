"""The pass planner: every chosen method for every target set of a batch, with each shared pass
run once. It knows methods only by what they declare (see :mod:`.method`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import nn

from ..explanation import Explanation
from .attention import AttentionMaps
from .method import ATTENTION, Method, MethodOutput, PathContext
from .objectives import Target, as_target
from .options import MethodOptions
from .passes import ForwardPass, forward_pass, predict, predict_reading

# the clean output -> the target sets: classes (LongTensor (B,)) or target objects
Choose = Callable[[torch.Tensor], Sequence[torch.Tensor | Target]]


def targets_of(choose: Choose, output: torch.Tensor) -> list[Target]:
    """The target sets that ``choose`` gives for the clean ``output``, as target objects fixed on
    it (a region the model itself assigns, see :meth:`.objectives.Target.bind`)."""
    bound = []
    for target in choose(output):
        made = as_target(target).bind(output)
        if made is not target and isinstance(target, Target) and target.present is not None:
            made.present = target.present  # bound anew: which samples have it stays
        bound.append(made)
    return bound


def _present(target_sets: Sequence[Target], batch: int, device: torch.device) -> torch.Tensor:
    """The samples (B,) bool that some target set has."""
    present = torch.zeros(batch, dtype=torch.bool, device=device)
    for target in target_sets:
        if target.present is None:
            return present.fill_(True)
        present |= target.present.to(device)
    return present


def compute_present(method: Method, context: PathContext) -> list[MethodOutput]:
    """``method.compute`` on the samples some target set has only: a photo with no detection
    costs a perturbation method nothing (D-RISE ran its 4,000 masks on it). The others' maps
    are zeros, never drawn; their values NaN."""
    batch = context.inputs.shape[0]
    if not context.target_sets:
        return []
    present = _present(context.target_sets, batch, context.inputs.device)
    if bool(present.all()):
        return method.compute(context)
    rows = present.nonzero()[:, 0]
    read, attention = context.read, context.attention
    part = replace(
        context,
        inputs=context.inputs[rows],
        clean=context.clean[rows],
        target_sets=[t.select(rows) for t in context.target_sets],
        logits=None if context.logits is None else context.logits[rows],
        read=None if read is None else (read[0], read[1][rows]),
        attention=None if attention is None else attention.select(rows),
    )
    outputs = method.compute(part)
    whole = []
    for output in outputs:
        maps = output.maps.new_zeros((batch, *output.maps.shape[1:]))
        maps[rows] = output.maps
        values = {}
        for key, value in output.values.items():
            blank = float("nan") if value.is_floating_point() else 0
            full = value.new_full((batch, *value.shape[1:]), blank)
            full[rows] = value
            values[key] = full
        whole.append(replace(output, maps=maps, values=values))
    return whole


def _shared_results(
    graph: ForwardPass, shared: Sequence[Method], target_sets: list[Target], options: MethodOptions
) -> list[dict[str, Explanation]]:
    """Per target set, the explanations of the methods with shared passes, from ``graph``:
    each declared pass once per target set, the graph kept until the last."""
    logits = graph.logits.detach()
    results: list[dict[str, Explanation]] = []
    for n, targets in enumerate(target_sets):
        keep = n < len(target_sets) - 1
        found = graph.shared(shared, targets, retain_graph=keep, options=options)
        result = {}
        for method in shared:
            maps, report = found[method.name]
            layer = graph.layer if method.uses_layer else None
            classes = targets.classes(len(maps), maps.device)
            result[method.name] = Explanation(
                maps, classes, logits, method.name, report, layer, shown=method.shown
            )
        results.append(result)
    return results


def run_plan(
    model: nn.Module,
    inputs: torch.Tensor,
    methods: Sequence[Method],
    choose: Choose,
    options: MethodOptions,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    should_stop: Callable[[], bool] | None = None,
    clean: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[dict[str, Explanation]]]:
    """The logits of ``inputs`` and, per target set that ``choose(logits)`` gives, each
    method's explanation (``smooth`` is not applied here; see :mod:`.smoothing`).

    One forward pass serves the methods with shared passes; methods with passes of their own get
    its logits, so none is computed twice. ``clean`` are the inputs before noise (default:
    ``inputs``), from which baselines are made."""
    shared = [m for m in methods if m.passes]
    own = [m for m in methods if not m.passes]
    read = None  # the layer's activations, read in the logits' pass for the methods that need it
    seen = None  # the attention, read in the logits' pass for the methods that need it
    reads = any(m.uses_layer for m in own)
    attends = any(m.reads_attention for m in own)
    if shared:
        capture = reads or any(m.uses_layer for m in shared)
        attention = attends or any(ATTENTION in m.passes for m in shared)
        with forward_pass(
            model, inputs, options.layer, capture=capture, attention=attention
        ) as graph:
            logits = graph.logits.detach()
            if reads and graph.capture is not None:
                read = (graph.capture.name, graph.capture.activation().detach())
            if attends and graph.attention is not None:
                seen = AttentionMaps.read(graph.attention)
            target_sets = targets_of(choose, logits)
            results = _shared_results(graph, shared, target_sets, options)
    elif reads or attends:
        logits, read, seen = predict_reading(
            model, inputs, options.batch_size, options.layer,
            read_layer=reads, read_attention=attends,
        )  # fmt: skip
        target_sets = targets_of(choose, logits)
        results = [{} for _ in target_sets]
    else:
        logits = predict(model, inputs, options.batch_size)
        target_sets = targets_of(choose, logits)
        results = [{} for _ in target_sets]
    context = PathContext(
        model,
        inputs.detach(),
        (inputs if clean is None else clean).detach(),
        target_sets,
        logits,
        options,
        normalization,
        should_stop,
        read,
        seen,
    )
    for method in own:
        outputs = compute_present(method, context)
        for result, output, t in zip(results, outputs, target_sets, strict=True):
            result[method.name] = Explanation(
                output.maps, t.classes(len(output.maps), output.maps.device), logits,
                method.name, output.report, output.layer, 0, output.values, shown=method.shown,
            )  # fmt: skip
    return logits, [{m.name: r[m.name] for m in methods} for r in results]
