"""The result of an explanation: maps for a batch, with what produced them."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .engine.report import RuleReport

if TYPE_CHECKING:
    from PIL import Image

    from .geometry import Geometry


@dataclass
class Explanation:
    """Saliency maps for a batch, as [saliency.explain][] returns them.

    In a notebook an explanation shows itself as a row of heatmaps;
    [render][saliency.Explanation.render] draws one as a picture.

    Attributes:
        maps: The maps, with the inputs' dtype and device. For the rule methods d
            score[target] / d input under the rule, with the inputs' shape and no
            post-processing; for the CAM and perturbation methods (B, 1, H, W), upsampled to
            the input's height and width.
        targets: The explained class of each sample, a LongTensor (B,).
        logits: The model's output on the clean inputs (B, K), detached.
        method: The method's name.
        report: Where a ReLU rule or LRP rule was applied, and what was left out.
        layer: The CAM methods' layer (None for the others).
        smooth: The number of SmoothGrad samples (0: none).
        values: A method's per-sample numbers, each (B,): for ``integrated_gradients``
            ``score_difference`` (score(input) - score(baseline)) and ``completeness`` (the
            sum of the attributions minus that difference); for the LRP methods
            ``relevance_sum`` (what reached the input) and ``logit`` (the target's logit it
            started from).
        shown: How the method's pictures show one sample's maps (its ``Method.shown``), given
            by the engine that made them, so that drawing needs no registry: the maps stay as
            defined.
    """

    maps: torch.Tensor
    targets: torch.Tensor
    logits: torch.Tensor
    method: str
    report: RuleReport
    layer: str | None = None
    smooth: int = 0
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    shown: Callable[[torch.Tensor], torch.Tensor] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the logits, (B, K)."""
        return self.logits.softmax(dim=1)

    @property
    def completeness(self) -> torch.Tensor | None:
        """Integrated Gradients: sum of attributions minus the score difference, (B,)."""
        return self.values.get("completeness")

    @property
    def score_difference(self) -> torch.Tensor | None:
        """Integrated Gradients: score(input) - score(baseline), (B,)."""
        return self.values.get("score_difference")

    def render(
        self,
        index: int = 0,
        photo: Image.Image | None = None,
        geometry: Geometry | None = None,
        **options: Any,
    ) -> Image.Image:
        """One sample's map as a picture.

        Args:
            index: The sample in the batch.
            photo: The photo the input was made from; the map is drawn over it at its size.
            geometry: How the photo became the input (from ``LoadedModel.preprocess``), to map
                the map back onto the photo exactly. Without photo and geometry the picture
                has the model's input size.
            **options: Those of [saliency.RenderOptions][] (``style``, ``sign``, ``cmap``, ...);
                ``style`` defaults to ``overlay`` with a photo and ``heatmap`` without.

        Returns:
            An RGB picture.

        Raises:
            ValueError: A bad option (unknown style, colormap, sign; alpha or percentile out of
                range), or ``overlay`` without a photo.
        """
        from .geometry import Geometry
        from .pictures.render import RenderOptions, render

        maps = self.maps[index] if self.shown is None else self.shown(self.maps[index])
        if geometry is None:
            height, width = maps.shape[-2:]
            size = photo.size if photo is not None else (width, height)
            geometry = Geometry(size, (0.0, 0.0, float(size[0]), float(size[1])), (width, height))
        options.setdefault("style", "overlay" if photo is not None else "heatmap")
        return render(photo, maps, geometry, RenderOptions(**options))

    def _repr_png_(self) -> bytes:
        """The maps as one row of heatmaps (at most 8), for notebooks."""
        from PIL import Image

        pictures = [self.render(i) for i in range(min(8, self.maps.shape[0]))]
        gap = 4
        width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
        height = max(p.height for p in pictures)
        sheet = Image.new("RGB", (width, height), (255, 255, 255))
        left = 0
        for picture in pictures:
            sheet.paste(picture, (left, 0))
            left += picture.width + gap
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG")
        return buffer.getvalue()
