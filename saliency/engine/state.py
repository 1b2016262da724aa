"""Run a model for an explanation and leave it exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import RuleError


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
    is never touched. Only what needs changing is changed (an eval-mode, frozen model costs
    nothing here), and restoration happens also when the block raises.
    """
    training = [module for module in model.modules() if module.training]
    trainable = [param for param in model.parameters() if param.requires_grad]
    try:
        if training:
            model.eval()
        for param in trainable:
            param.requires_grad_(False)
        yield model
    finally:
        for param in trainable:
            param.requires_grad_(True)
        if training:
            for module in model.modules():  # eval() cleared every flag: set back the ones we had
                module.training = False
            for module in training:
                module.training = True
