"""Layer readers: a CAM layer is read as the grid its output really is, or refused.

A timm Swin's stages and final ``norm`` output channels-last (B, H, W, C): ``gradcam`` reads
``norm`` through the ``channels_last`` reader and agrees with pytorch-grad-cam given the
permute its tutorial uses (its ``reshape_transform``). An output whose layout its shape cannot
tell, in a model that has channels-last layers, is refused until a reader is named. (Token
sequences and their reader: ``test_transformers.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from saliency import explain
from saliency.engine.layers import resolve_layer
from tests.test_against_grad_cam import _scaled

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def _timm(name: str) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10).eval()


def test_swin_norm_is_read_channels_last_as_pytorch_grad_cam_reads_it_permuted() -> None:
    model = _timm("swin_tiny_patch4_window7_224")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert resolve_layer(model, x[:1]) == "norm:channels_last"  # the default, its reader told
    result = explain(model, x, "gradcam")
    assert result.layer == "norm:channels_last"
    ours, classes = result.maps.detach()[:, 0].numpy(), result.targets.tolist()

    def permute(t: torch.Tensor) -> torch.Tensor:  # pytorch-grad-cam's Swin tutorial
        return t.permute(0, 3, 1, 2)

    with GradCAM(model=model, target_layers=[model.norm], reshape_transform=permute) as peer:
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    for a, b in zip(_scaled(ours), _scaled(theirs), strict=True):
        assert a.std() > 0 and b.std() > 0
        assert float(np.corrcoef(a, b)[0, 1]) >= 0.99
    misread = explain(model, x, "gradcam", layer="norm:channels_first")  # as before the readers
    wrong = _scaled(misread.maps.detach()[:, 0].numpy())
    for a, b in zip(wrong, _scaled(theirs), strict=True):
        assert float(np.corrcoef(a, b)[0, 1]) < 0.9


class _Mixed(nn.Module):
    """A small net with a channels-last layer norm in it, and a block whose output (1, 4, 4, 4)
    could be read either way."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(self.stem(x)).permute(0, 2, 3, 1)
        return self.head(self.norm(y).mean(dim=(1, 2)))


def test_a_layout_that_cannot_be_told_is_refused_until_a_reader_is_named() -> None:
    torch.manual_seed(0)
    model, x = _Mixed().eval(), torch.randn(2, 3, 8, 8)
    # the default is norm, a LayerNorm over 4-D: channels-last for sure
    assert resolve_layer(model, x[:1]) == "norm:channels_last"
    with pytest.raises(ValueError, match=r"'block' outputs shape \(1, 4, 4, 4\).*block:channels_"):
        explain(model, x, "gradcam", layer="block")
    told = explain(model, x, "gradcam", layer="block:channels_first")
    assert told.layer == "block"
    targets = [ClassifierOutputTarget(c) for c in told.targets.tolist()]
    with GradCAM(model=model, target_layers=[model.block]) as peer:  # channels-first, as asked
        theirs = peer(input_tensor=x, targets=targets)
    for a, b in zip(_scaled(told.maps.detach()[:, 0].numpy()), _scaled(theirs), strict=True):
        assert float(np.corrcoef(a, b)[0, 1]) >= 0.99
    with pytest.raises(ValueError, match="unknown layer reader 'patches'; readers: channels_first"):
        explain(model, x, "gradcam", layer="norm:patches")
    with pytest.raises(ValueError, match=r"'norm' outputs shape \(1, 4, 4, 4\), which tokens"):
        explain(model, x, "gradcam", layer="norm:tokens")  # no token sequence: refused
    model.cam_layer = "block:channels_first"  # the model says its layer and how to read it
    assert resolve_layer(model, x[:1]) == "block"
    assert torch.equal(explain(model, x, "gradcam").maps, told.maps)


def test_a_plain_cnn_reads_a_shape_that_cannot_tell_as_channels_first() -> None:
    """No layer of a plain CNN is channels-last: a (1, 4, 4, 4) output is a convolution's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), nn.Flatten(),
                          nn.Linear(64, 3)).eval()  # fmt: skip
    assert resolve_layer(model, torch.randn(1, 3, 8, 8)) == "2"
