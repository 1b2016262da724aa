"""The methods by name: what each shows, what it costs, and what it needs.

Every method is a backward pass from one class score, on the engine of :mod:`saliency.rules`:

* ``gradient``, ``deconvnet``, ``guided``: the three ReLU rules, d score / d input;
* ``gradient_x_input``: the true gradient times the input (Shrikumar et al. 2016);
* ``gradcam``: Grad-CAM at a feature-map layer (Selvaraju et al. 2017): the layer's channels
  weighted by their spatially averaged gradient, summed, ReLU, upsampled bilinearly to the input;
* ``guided_gradcam``: Guided Backprop times the upsampled Grad-CAM, from one forward pass;
* ``integrated_gradients``: (input - baseline) times the gradient averaged along the straight
  path from the baseline (Sundararajan et al. 2017).

SmoothGrad (Smilkov et al. 2017) wraps any of them: the mean map over noisy copies of the input.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A method: ``rule`` is the ReLU rule of its input backward pass (None if it has none),
    ``uses_layer`` whether it explains a feature-map layer, ``path`` whether it integrates along a
    path of inputs (and so needs forward passes of its own)."""

    name: str
    summary: str
    cost: str
    rule: str | None
    uses_layer: bool = False
    path: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "gradient",
            "true gradient of the class score (Simonyan et al. 2013)",
            "1 forward + 1 backward",
            "gradient",
        ),
        Method(
            "deconvnet",
            "positive gradient, forward mask ignored (Zeiler & Fergus 2014)",
            "1 forward + 1 backward",
            "deconvnet",
        ),
        Method(
            "guided",
            "positive gradient and forward mask (Springenberg et al. 2014)",
            "1 forward + 1 backward",
            "guided",
        ),
        Method(
            "gradcam",
            "class-sensitive coarse map at a feature-map layer (Selvaraju et al. 2017)",
            "1 forward + 1 backward down to the layer only",
            None,
            uses_layer=True,
        ),
        Method(
            "guided_gradcam",
            "Guided Backprop times the upsampled Grad-CAM: crisp and class-sensitive",
            "1 forward + 1 backward + 1 backward down to the layer",
            "guided",
            uses_layer=True,
        ),
        Method(
            "integrated_gradients",
            "(input - baseline) x gradient averaged along the path (Sundararajan et al. 2017)",
            "STEPS forwards + STEPS backwards, batched, + 2 forwards for the completeness check",
            "gradient",
            path=True,
        ),
        Method(
            "gradient_x_input",
            "true gradient times the input (Shrikumar et al. 2016)",
            "1 forward + 1 backward",
            "gradient",
        ),
    )
}

SMOOTH_COST = "N times the method's passes, batched: N / batch-size passes per image"


def get_method(name: str | Method) -> Method:
    """Look a method up by name, case-insensitively; raises ``ValueError`` listing valid names."""
    if isinstance(name, Method):
        return name
    if isinstance(name, str) and name.strip().lower() in METHODS:
        return METHODS[name.strip().lower()]
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
