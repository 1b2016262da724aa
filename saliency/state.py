"""Run a model for an explanation and leave it exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .errors import RuleError


def check_eager(model: nn.Module) -> None:
    """Refuse scripted and compiled models, whose ReLU units autograd cannot see one by one."""
    if isinstance(model, torch.jit.ScriptModule):
        raise RuleError(
            "TorchScript models are not supported: a scripted graph may fuse its ReLU units out of "
            "autograd's sight; explain the eager model (before torch.jit.script/trace)"
        )
    if hasattr(model, "_orig_mod") and type(model).__name__ == "OptimizedModule":
        raise RuleError(
            "torch.compile'd models are not supported: the compiled graph hides its ReLU units "
            "from the rule; explain the original module (model._orig_mod)"
        )


@contextmanager
def explanation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the block; train flags and ``requires_grad`` restored.

    Freezing the parameters means autograd records and computes no parameter gradient; ``.grad``
    is never touched. Restoration happens also when the block raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield model
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)
        for module, training in modes:
            module.training = training
