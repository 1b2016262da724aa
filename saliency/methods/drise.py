"""``drise``: D-RISE (Petsiuk et al. 2021): RISE's random masks, each weighed by how well the
masked photo's detections still match the detection explained, the D-RISE similarity (IoU x
score x class agreement, the best over the masked photo's detections; see
:mod:`saliency.engine.boxes`). No gradient at all.

The masks are RISE's (``masks``, ``cells``, ``p``, drawn from the run's seed per input size), so
a map depends on neither its batch nor the order of the inputs: the map is
``sum_i s_i M_i / (masks * p)``. Only a detection's target has a D-RISE similarity: on any other
model, use ``rise``.
"""

from __future__ import annotations

from ..engine.boxes import BoxTarget
from ..engine.method import MethodOutput, PathContext
from ..engine.needs import BOX_TARGETS
from ..engine.registry import register_method
from .rise import RISE


@register_method
class DRISE(RISE):
    name = "drise"
    summary = "a detection's similarity through random masks, per pixel (Petsiuk et al. 2021)"
    cost = "1 forward per mask (MASKS, 4000 by default), batched; no backward"
    order = 96
    needs = frozenset({BOX_TARGETS})
    instead = "rise"

    def compute(self, context: PathContext) -> list[MethodOutput]:
        for target in context.target_sets:
            if not isinstance(target, BoxTarget):
                raise ValueError(
                    f"drise explains a detection (a box target on a detector), not a "
                    f"{target.kind} target: use rise"
                )
        return super().compute(context)
