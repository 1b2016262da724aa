"""Targets as objects: what a map explains, for any model whose output is a tensor.

A target turns a model's output for a batch into **one score per sample**; every method that
needs a score (each backward pass, each perturbed copy's forward pass) asks the target for it. So
a segmentation model is explained through the sum of a class's logits over a region, an embedding
model through the similarity to a reference, and anything else through a callable, by the same
engine and every method that makes sense for them.

* :class:`ClassTarget`: a class per sample (what a class index means for a classifier);
* :class:`RegionTarget`: a class over a region of a segmentation output (the sum of its logits
  over a mask, pytorch-grad-cam's ``SemanticSegmentationTarget``; the mean as an option); the
  mask given, or the pixels the model itself assigns to the class;
* :class:`SimilarityTarget`: the cosine similarity of the output to a reference embedding (or
  1 - cosine, "what makes it different"), pytorch-grad-cam's ``SimilarityToConceptTarget``;
* :class:`ScoreTarget`: a user's callable from the output to (B,) scores (multi-label sigmoid
  outputs, regression, anything else).

A target may depend on the clean output of its batch (the region the model assigns to a class):
:meth:`Target.bind` fixes that once, from the clean pass, so that perturbed copies (path points,
noisy copies, occluded or masked copies) are scored against the same region. Rows of an expanded
batch are scored with :meth:`Target.select`, the target of the samples those rows copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = [
    "ClassTarget",
    "RegionTarget",
    "ScoreTarget",
    "SimilarityTarget",
    "Target",
    "as_target",
    "classifier_output",
    "model_output",
]


def model_output(output: object) -> torch.Tensor:
    """The tensor a model's output stands for: itself, or a mapping's ``"out"`` (torchvision's
    segmentation models return ``{"out": logits, "aux": ...}``)."""
    if isinstance(output, Mapping) and "out" in output:
        output = output["out"]
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"the model returned {type(output).__name__}; a target needs a tensor (B, ...) or a "
            "dict with 'out'"
        )
    return output


def classifier_output(output: torch.Tensor) -> torch.Tensor:
    """``output`` if it is a classifier's (B, K); else the error a class target gives on any
    other model, naming the targets that fit it."""
    if output.dim() != 2:
        raise ValueError(
            f"a class target needs a classifier's output (B, K); this model returns "
            f"{tuple(output.shape)}: pass a target object (RegionTarget for a segmentation, "
            "SimilarityTarget for an embedding, BoxScoreTarget for a detector, ScoreTarget for "
            "anything else)"
        )
    return output


class Target:
    """What a map explains: one score per sample from the model's output.

    Subclass it and define :meth:`score` to explain anything a model outputs; override
    :meth:`select` if the target holds something per sample, and :meth:`bind` if it depends
    on the clean output.
    """

    kind = "custom"
    # whether it names a box of the input that a map's peak should fall in (the pointing game)
    locates: bool = False
    # which samples (B,) bool have this target; None: all. A plan sets it where an image has
    # fewer targets than the batch's ranks (no detection): methods with passes of their own
    # skip the samples no target set has (see .planner), whose maps are never drawn
    present: torch.Tensor | None = None

    def score(self, output: torch.Tensor) -> torch.Tensor:
        """The score of each row of ``output`` (the model's output for B rows), a tensor (B,)
        through which gradients flow."""
        raise NotImplementedError

    def confidence(self, output: torch.Tensor) -> torch.Tensor:
        """The score RISE weighs its masks by: the score itself, unless a target has a
        probability (a class of a classifier)."""
        return self.score(output)

    def select(self, rows: torch.Tensor) -> Target:
        """The target of the samples that ``rows`` (a LongTensor) copy, for an expanded batch:
        itself where nothing is held per sample."""
        return self

    def bind(self, output: torch.Tensor) -> Target:
        """This target fixed on the clean output of its batch (see :class:`RegionTarget`);
        itself where nothing depends on it."""
        return self

    def classes(self, batch: int, device: torch.device) -> torch.Tensor:
        """The class each sample's map explains, a LongTensor (B,); -1 where there is none."""
        return torch.full((batch,), -1, dtype=torch.long, device=device)


class BoundOnClean(Target):
    """A target chosen from the clean output (each image's best detection, its main region,
    its likeliest label): :meth:`bind` it first; it scores nothing before."""

    def score(self, output: torch.Tensor) -> torch.Tensor:
        raise ValueError(
            f"a {type(self).__name__} target must be bound to the clean output first"
        )


class ClassTarget(Target):
    """A class per sample: the output's logit at that class (a classifier's output (B, K)).

    Args:
        indices: One class for every sample (an int) or a LongTensor (B,).
    """

    kind = "class"

    def __init__(self, indices: int | torch.Tensor) -> None:
        self.indices = indices

    def _column(self, output: torch.Tensor) -> torch.Tensor:
        classifier_output(output)
        indices = self.indices
        if isinstance(indices, int):
            return torch.full((output.shape[0], 1), indices, device=output.device)
        return indices.to(output.device).view(-1, 1)

    def score(self, output: torch.Tensor) -> torch.Tensor:
        return output.gather(1, self._column(output))[:, 0]

    def confidence(self, output: torch.Tensor) -> torch.Tensor:
        return output.float().softmax(dim=1).gather(1, self._column(output))[:, 0]

    def select(self, rows: torch.Tensor) -> ClassTarget:
        if isinstance(self.indices, int):
            return self
        return ClassTarget(self.indices.to(rows.device)[rows])

    def classes(self, batch: int, device: torch.device) -> torch.Tensor:
        if isinstance(self.indices, int):
            return torch.full((batch,), self.indices, dtype=torch.long, device=device)
        return self.indices.to(device)


class RegionTarget(Target):
    """A class over a region of a segmentation output (B, C, H, W): the sum of the class's
    logits over the region's pixels (pytorch-grad-cam's ``SemanticSegmentationTarget``), or
    their mean (``reduce="mean"``, xplique's segmentation operator).

    Args:
        category: The class: one for every sample (an int) or a LongTensor (B,).
        mask: The region: (H, W) for every sample or (B, H, W), 0/1 or weights at the output's
            resolution. None: the pixels the model itself assigns to the class (its argmax) on
            the clean input, fixed for every perturbed copy.
        reduce: ``sum`` (default) or ``mean`` over the region.
    """

    kind = "region"

    def __init__(
        self,
        category: int | torch.Tensor,
        mask: torch.Tensor | None = None,
        reduce: str = "sum",
    ) -> None:
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        self.category = category
        self.mask = mask
        self.reduce = reduce

    def _categories(self, batch: int, device: torch.device) -> torch.Tensor:
        if isinstance(self.category, int):
            return torch.full((batch,), self.category, dtype=torch.long, device=device)
        return self.category.to(device).long().view(-1)

    def bind(self, output: torch.Tensor) -> RegionTarget:
        if self.mask is not None:
            return self
        output = _segmentation(output)
        categories = self._categories(output.shape[0], output.device)
        own = output.detach().argmax(dim=1) == categories.view(-1, 1, 1)
        return RegionTarget(self.category, own.to(output.dtype), self.reduce)

    def score(self, output: torch.Tensor) -> torch.Tensor:
        output = _segmentation(output)
        if self.mask is None:
            raise ValueError("a RegionTarget without a mask must be bound to the clean output")
        batch = output.shape[0]
        categories = self._categories(batch, output.device)
        chosen = output[torch.arange(batch, device=output.device), categories]  # (B, H, W)
        mask = self.mask.to(output.device, output.dtype)
        if mask.shape[-2:] != chosen.shape[-2:]:
            raise ValueError(
                f"the region's mask is {tuple(mask.shape[-2:])}, the output "
                f"{tuple(chosen.shape[-2:])}: give the mask at the output's resolution"
            )
        mask = mask.expand_as(chosen)
        total = (chosen * mask).sum(dim=(1, 2))
        if self.reduce == "mean":
            total = total / mask.sum(dim=(1, 2)).clamp(min=1e-12)
        return total

    def confidence(self, output: torch.Tensor) -> torch.Tensor:
        """The class's mean probability over the region (0 to 1, as a classifier's), which RISE
        weighs its masks by and deletion and insertion follow: a sum of logits over thousands
        of pixels has no scale to read."""
        output = _segmentation(output)
        if self.mask is None:
            raise ValueError("a RegionTarget without a mask must be bound to the clean output")
        batch = output.shape[0]
        categories = self._categories(batch, output.device)
        rows = torch.arange(batch, device=output.device)
        chosen = output.float().softmax(dim=1)[rows, categories]  # (B, H, W)
        mask = self.mask.to(output.device, chosen.dtype).expand_as(chosen)
        return (chosen * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1e-12)

    def select(self, rows: torch.Tensor) -> RegionTarget:
        category = self.category
        if not isinstance(category, int):
            category = category.to(rows.device)[rows]
        mask = self.mask
        if mask is not None and mask.dim() == 3:
            mask = mask.to(rows.device)[rows]
        return RegionTarget(category, mask, self.reduce)

    def classes(self, batch: int, device: torch.device) -> torch.Tensor:
        return self._categories(batch, device)


def _segmentation(output: torch.Tensor) -> torch.Tensor:
    if output.dim() != 4:
        raise ValueError(
            f"a region target needs a segmentation output (B, C, H, W); this model returns "
            f"{tuple(output.shape)}"
        )
    return output


class SimilarityTarget(Target):
    """The cosine similarity of each sample's output (flattened) to a reference embedding
    (pytorch-grad-cam's ``SimilarityToConceptTarget``), or 1 - cosine with ``different``
    (``DifferenceFromConceptTarget``: what makes the photo unlike the reference).

    Args:
        reference: The reference embedding: (D,) for every sample or (B, D).
        different: Explain 1 - cosine instead.
    """

    kind = "similarity"

    def __init__(self, reference: torch.Tensor, different: bool = False) -> None:
        self.reference = reference.detach()
        self.different = different
        if different:
            self.kind = "difference"

    def score(self, output: torch.Tensor) -> torch.Tensor:
        flat = output.flatten(1)
        reference = self.reference.to(flat.device, flat.dtype)
        if reference.dim() == 1:
            reference = reference.expand_as(flat)
        if reference.shape != flat.shape:
            raise ValueError(
                f"the reference embedding is {tuple(reference.shape[1:])}, the model's output "
                f"{tuple(flat.shape[1:])}"
            )
        cosine = torch.nn.functional.cosine_similarity(flat, reference, dim=1)
        return 1 - cosine if self.different else cosine

    def select(self, rows: torch.Tensor) -> SimilarityTarget:
        if self.reference.dim() == 1:
            return self
        return SimilarityTarget(self.reference.to(rows.device)[rows], self.different)


class ScoreTarget(Target):
    """A user's own score: ``function(output) -> (B,)``, row by row (each row's score may depend
    on that row alone), e.g. ``lambda out: out.sigmoid()[:, 3]`` for one label of a multi-label
    model, or ``lambda out: out[:, 0]`` for a regression.

    Args:
        function: From the model's output for B rows to a tensor (B,), differentiable.
        name: What it is, for its messages.
    """

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], name: str = "custom"):
        self.function = function
        self.name = name

    def score(self, output: torch.Tensor) -> torch.Tensor:
        found = self.function(output)
        if not isinstance(found, torch.Tensor) or found.shape != (output.shape[0],):
            shape = tuple(found.shape) if isinstance(found, torch.Tensor) else type(found)
            raise ValueError(f"{self.name}: the target's function must give one score per row, "
                             f"got {shape}")  # fmt: skip
        return found


def as_target(target: Target | torch.Tensor) -> Target:
    """A target object: a LongTensor (B,) of classes is a :class:`ClassTarget`."""
    if isinstance(target, Target):
        return target
    return ClassTarget(target)
