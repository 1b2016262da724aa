"""An independent reference for the rules: every ReLU-family spelling patched to a custom
autograd Function that implements the rule itself (a different mechanism from the library's
node hooks). Good for models that use the return value of in-place calls, as torchvision does."""

from __future__ import annotations

import math
from contextlib import ExitStack
from unittest import mock

import torch
import torch.nn.functional as F

MASKS = {"gradient": (True, False), "deconvnet": (False, True), "guided": (True, True)}


class _RuleFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cap, forward_mask, positive_only):
        ctx.save_for_backward(x)
        ctx.cap, ctx.forward_mask, ctx.positive_only = cap, forward_mask, positive_only
        return x.clamp(min=0) if math.isinf(cap) else x.clamp(0, cap)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = g.clamp(min=0) if ctx.positive_only else g
        if ctx.forward_mask:
            grad = grad * ((x > 0) & (x < ctx.cap)).to(g.dtype)
        return grad, None, None, None


def reference_gradient(model, x, method, targets):
    """d logits[target] / d x with the rule applied by patched activation functions.

    Returns (gradient, number of ReLU-family calls made)."""
    fmask, pos = MASKS[method]
    calls = []
    orig_hardtanh = F.hardtanh

    def unit(t, cap=math.inf):
        calls.append(cap)
        return _RuleFn.apply(t, cap, fmask, pos)

    def hardtanh(t, min_val=-1.0, max_val=1.0, inplace=False):
        if min_val == 0:
            return unit(t, float(max_val))
        return orig_hardtanh(t, min_val, max_val, inplace)

    patches = {
        (F, "relu"): lambda t, inplace=False: unit(t),
        (F, "relu_"): lambda t: unit(t),
        (F, "relu6"): lambda t, inplace=False: unit(t, 6.0),
        (F, "hardtanh"): hardtanh,
        (torch, "relu"): lambda t: unit(t),
        (torch, "relu_"): lambda t: unit(t),
        (torch.Tensor, "relu"): lambda t: unit(t),
        (torch.Tensor, "relu_"): lambda t: unit(t),
    }
    was_training = model.training
    model.eval()
    try:
        with ExitStack() as stack:
            for (owner, name), fn in patches.items():
                stack.enter_context(mock.patch.object(owner, name, fn))
            xr = x.detach().clone().requires_grad_(True)
            logits = model(xr)
            score = logits.gather(1, targets.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, xr)
    finally:
        model.train(was_training)
    return grad, len(calls)


def rule_by_hand(g, pre, method, cap=math.inf):
    """The rule at one unit, from its own incoming gradient g and its forward input pre."""
    fmask, pos = MASKS[method]
    out = g.clamp(min=0) if pos else g
    if fmask:
        out = out * ((pre > 0) & (pre < cap)).to(g.dtype)
    return out


RULE_METHODS = ["gradient", "deconvnet", "guided"]  # the three methods that are one rule each
