"""LRP rules at an affine layer (a convolution or a linear layer, batch norm folded in).

Each rule maps the relevance ``R`` at the layer's output to relevance at its input, as in
Montavon et al. 2019 ("Layer-Wise Relevance Propagation: An Overview") and with zennit's
conventions, so that the two agree number for number: a denominator ``z`` is stabilized as
``z + eps * sign(z)`` with ``sign(0) = +1``; ``x+``, ``x-``, ``W+``, ``W-`` are the positive
and negative parts.

* epsilon:    ``x * W^T (R / (W x + b))``
* z-plus:     ``(x+ W+^T + x- W-^T) (R / z+)``, ``z+ = W+ x+ + b+ + W- x-`` (alpha 1, beta 0)
* alpha-beta: ``alpha`` times the positive contributions' share minus ``beta`` times the
  negative ones' (``alpha - beta = 1``)
* gamma:      positive weights amplified by ``1 + gamma`` (the generalized rule of
  Andeol et al. 2021, which allows negative inputs)
* flat, w^2:  spread by the receptive field alone (all weights 1; squared weights), blind to x
* z-box:      for the first layer, with inputs bounded by ``low`` and ``high``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

STABILIZER = 1e-6  # zennit's default: keeps a denominator off zero, changes nothing else


def stabilized(z: torch.Tensor, epsilon: float = STABILIZER) -> torch.Tensor:
    """``z + epsilon * sign(z)``, with the sign of 0 taken as +1."""
    return z + torch.where(z >= 0, epsilon, -epsilon)


@dataclass
class Affine:
    """One convolution or linear call as it ran: its input, weight and bias (with a following
    batch norm folded in when there was one), and the call's other arguments. ``pad`` is the
    explicit zero padding its input carries (``F.pad`` before the call, as in TensorFlow-style
    "same" convolutions); rules that replace the input fill only the unpadded part."""

    inputs: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    conv: dict[str, Any] | None  # stride, padding, dilation, groups; None for a linear layer
    pad: tuple[int, ...] | None = None
    # a bias the rules leave out (``bias=False``): still part of the output whose sign the
    # gamma rule reads, as in zennit
    left_out: torch.Tensor | None = None

    def run(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The layer's operation on ``x`` with other parameters."""
        if self.conv is None:
            return F.linear(x, weight, bias)
        return F.conv2d(x, weight, bias, **self.conv)

    def back(self, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """``weight^T grad``: the operation's transpose (its gradient with respect to ``x``)."""
        with torch.enable_grad():
            x = torch.zeros_like(self.inputs).requires_grad_(True)
            (found,) = torch.autograd.grad(self.run(x, weight, None), x, grad)
        return found

    def filled(self, value: float | torch.Tensor) -> torch.Tensor:
        """An input of the layer's shape holding ``value`` (a number, or per channel), zero in
        the padding that the input carries."""
        shape = list(self.inputs.shape)
        pad = self.pad or ()
        for n in range(len(pad) // 2):
            shape[-1 - n] -= pad[2 * n] + pad[2 * n + 1]
        value = torch.as_tensor(value, dtype=self.inputs.dtype, device=self.inputs.device)
        if value.dim() == 1 and len(shape) > 2:
            value = value.view(-1, *(1,) * (len(shape) - 2))
        full = value.expand(shape).clone()
        return F.pad(full, list(pad)) if pad else full


def _parts(t: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if t is None:
        return None, None
    return t.clamp(min=0), t.clamp(max=0)


Rule = Callable[[Affine, torch.Tensor], torch.Tensor]


def epsilon_rule(epsilon: float) -> Rule:
    """LRP-epsilon (Bach et al. 2015): relevance in proportion to each input's contribution,
    a share of it absorbed by ``epsilon`` where the output is weak (LRP-0 at ``epsilon=0``)."""

    def rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
        z = layer.run(layer.inputs, layer.weight, layer.bias)
        return layer.inputs * layer.back(layer.weight, relevance / stabilized(z, epsilon))

    return rule


def alpha_beta_rule(alpha: float, beta: float) -> Rule:
    """LRP-alpha-beta (Bach et al. 2015): positive and negative contributions normalized
    apart, weighted ``alpha`` and ``-beta``; z-plus is ``alpha=1, beta=0``."""

    def rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
        x, (wp, wn), (bp, bn) = layer.inputs, _parts(layer.weight), _parts(layer.bias)
        assert wp is not None and wn is not None
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        positive = layer.run(xp, wp, bp) + layer.run(xn, wn, None)
        s = relevance / stabilized(positive)
        found = alpha * (xp * layer.back(wp, s) + xn * layer.back(wn, s))
        if beta:
            negative = layer.run(xp, wn, bn) + layer.run(xn, wp, None)
            s = relevance / stabilized(negative)
            found = found - beta * (xp * layer.back(wn, s) + xn * layer.back(wp, s))
        return found

    return rule


def gamma_rule(gamma: float) -> Rule:
    """LRP-gamma (Montavon et al. 2019, generalized by Andeol et al. 2021): the contributions
    of the output's own sign amplified by ``1 + gamma``, which favours them over the rest."""

    def rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
        x, w, b = layer.inputs, layer.weight, layer.bias
        (wp, wn), (bp, bn) = _parts(w), _parts(b)
        assert wp is not None and wn is not None
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        up, down = w + gamma * wp, w + gamma * wn  # weights favouring positive, negative
        b_up = None if b is None or bp is None else b + gamma * bp
        b_down = None if b is None or bn is None else b + gamma * bn
        z = layer.run(x, w, b if layer.left_out is None else layer.left_out)
        rising = layer.run(xp, up, b_up) + layer.run(xn, down, None)
        falling = layer.run(xp, down, b_down) + layer.run(xn, up, None)
        s_up = (z > 0) * relevance / stabilized(rising)
        s_down = (z < 0) * relevance / stabilized(falling)
        return (
            xp * layer.back(up, s_up)
            + xn * layer.back(down, s_up)
            + xp * layer.back(down, s_down)
            + xn * layer.back(up, s_down)
        )

    return rule


def flat_rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
    """LRP-flat (Lapuschkin et al. 2019): each output's relevance spread evenly over its
    receptive field, whatever the inputs and weights."""
    ones = layer.filled(1.0)
    weight = torch.ones_like(layer.weight)
    return layer.back(weight, relevance / stabilized(layer.run(ones, weight, None)))


def w_square_rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
    """LRP-w^2 (Montavon et al. 2017): spread in proportion to the squared weights, whatever
    the inputs; for a first layer whose inputs are not bounded."""
    ones = layer.filled(1.0)
    weight = layer.weight**2
    bias = None if layer.bias is None else layer.bias**2
    return layer.back(weight, relevance / stabilized(layer.run(ones, weight, bias)))


def z_box_rule(low: torch.Tensor, high: torch.Tensor) -> Rule:
    """LRP-z^B (Montavon et al. 2017) for the first layer, whose inputs lie between ``low``
    and ``high`` (per channel): relevance of each input relative to the box's corners."""

    def rule(layer: Affine, relevance: torch.Tensor) -> torch.Tensor:
        x, (wp, wn), (bp, bn) = layer.inputs, _parts(layer.weight), _parts(layer.bias)
        assert wp is not None and wn is not None
        lows, highs = layer.filled(low), layer.filled(high)
        z = (
            layer.run(x, layer.weight, layer.bias)
            - layer.run(lows, wp, bp)
            - layer.run(highs, wn, bn)
        )
        s = relevance / stabilized(z)
        return (
            x * layer.back(layer.weight, s) - lows * layer.back(wp, s) - highs * layer.back(wn, s)
        )

    return rule
