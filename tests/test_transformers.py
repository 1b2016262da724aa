"""Vision transformers: CAMs read from the token grid the model tells, attention rollout and
gradient-weighted rollout, each checked against something independent.

* The CAM family at the last block's first norm (Swin: its final norm) agrees with
  pytorch-grad-cam given its own ViT and Swin reshape transforms, on seeded random timm ViT,
  DeiT (distilled: two prefix tokens) and Swin, and torchvision's ViT-B/16.
* ``rollout`` and ``gradient_rollout`` equal the papers' formulas written out here with full
  matrix products, on attention this file captures with hooks of its own (for torchvision's
  ``nn.MultiheadAttention``, an attention module written out here in its place): 1, 2 and 5
  prefix tokens, and a non-square input through timm's ``dynamic_img_size``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform
from torch import nn

from saliency import SimilarityTarget, explain, load_model
from saliency.checks.randomization import randomization_steps, randomize
from saliency.engine.layers import resolve_layer
from saliency.engine.registry import expand_methods
from tests.commands import cli, compare_evaluate_and_sanity
from tests.outputs_check import manifest_rows
from tests.test_against_grad_cam import PEERS, _scaled
from tests.test_explain_api import assert_untouched, snapshot

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"



def _timm(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()


def _torchvision_vit(**kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(num_classes=10, **kwargs)  # type: ignore[arg-type]
    nn.init.normal_(model.heads.head.weight, std=0.05)  # torchvision zeroes it: no gradient
    return model.eval()


def _peer_case(arch: str) -> tuple[nn.Module, str, nn.Module, object]:
    """The model, our default layer, pytorch-grad-cam's layer and its reshape transform."""
    if arch == "vit_b_16":
        model = _torchvision_vit(image_size=224, patch_size=16, num_layers=12, num_heads=12,
                                 hidden_dim=768, mlp_dim=3072)  # fmt: skip  (vit_b_16's)
        last = model.encoder.layers[-1]
        return model, "encoder.layers.encoder_layer_11.ln_1", last.ln_1, vit_reshape_transform
    model = _timm(arch)
    if arch.startswith("swin"):
        return model, "norm:channels_last", model.norm, (
            lambda t: swinT_reshape_transform(t.flatten(1, 2))  # (B, 7, 7, C) as (B, 49, C)
        )
    if arch.startswith("deit"):  # its transform drops one token: the distillation one first
        return model, "blocks.11.norm1", model.blocks[-1].norm1, (
            lambda t: vit_reshape_transform(t[:, 1:])
        )
    return model, "blocks.11.norm1", model.blocks[-1].norm1, vit_reshape_transform


ARCHS = [
    "vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "swin_tiny_patch4_window7_224",
    "vit_b_16",
]  # fmt: skip


@pytest.fixture(scope="module", params=ARCHS)
def peer_case(request: pytest.FixtureRequest) -> tuple[nn.Module, str, nn.Module, object]:
    return _peer_case(request.param)


def test_the_cam_family_agrees_with_pytorch_grad_cam_at_the_default_layer(peer_case) -> None:
    model, layer, target, reshape = peer_case
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert resolve_layer(model, x[:1]) == layer
    for method, peer in PEERS.items():
        result = explain(model, x, method)
        assert result.layer == layer
        ours, classes = result.maps.detach()[:, 0].numpy(), result.targets.tolist()
        with peer(model=model, target_layers=[target], reshape_transform=reshape) as cam:
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        for image, (a, b) in enumerate(zip(_scaled(ours), _scaled(theirs), strict=True)):
            assert a.std() > 0 and b.std() > 0, (method, image)
            r = float(np.corrcoef(a, b)[0, 1])
            assert r >= 0.99, (method, image, r)


def test_eigencam_reads_the_grid_pytorch_grad_cam_s_reshape_makes(peer_case) -> None:
    """Eigen-CAM reads no gradient: its map is the first principal component of the grid our
    reader made, which is the grid pytorch-grad-cam's reshape transform makes; its projection
    is theirs up to the sign (a layer norm's output has a mean of about zero at every token,
    so our sign rule, agreement with the mean activation, is no firmer than their SVD's)."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from saliency.engine.method import upsampled
    from saliency.methods.eigencam import principal_projection

    model, _, target, reshape = peer_case
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda m, a, out: captured.append(out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    grid = reshape(captured[0])
    maps = explain(model, x, "eigencam").maps.detach()
    torch.testing.assert_close(maps, upsampled(principal_projection(grid), (224, 224)))
    theirs = torch.from_numpy(get_2d_projection(grid.numpy()))
    for ours, their in zip(principal_projection(grid)[:, 0], theirs, strict=True):
        r = float(torch.corrcoef(torch.stack([ours.flatten(), their.flatten()]))[0, 1])
        assert abs(r) >= 0.99


# the papers' formulas, written out with full matrices over attention captured here


def rollout_formula(
    attentions: list[torch.Tensor], fusion: str = "mean", discard: float = 0.0
) -> torch.Tensor:
    """Abnar & Zuidema: R = Ā_L ... Ā_1 with Ā = rows-renormalized (fused A + I) / 2; (B, N, N).
    ``discard``: jacobgil/vit-explain's, each image's lowest entries zeroed but the first."""
    result = None
    for a in attentions:
        fused = {"mean": a.mean(1), "max": a.max(1).values, "min": a.min(1).values}[fusion]
        if discard:  # the lowest chosen in the model's float32, as the model's own would be
            flat = fused.reshape(fused.shape[0], -1).clone()
            chosen = a.float().mean(1).reshape(flat.shape)
            for image, values in zip(flat, chosen, strict=True):
                _, lowest = values.topk(int(values.numel() * discard), largest=False)
                image[lowest[lowest != 0]] = 0
            fused = flat.reshape(fused.shape)
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype)
        step = (fused + eye) / 2
        step = step / step.sum(dim=-1, keepdim=True)
        result = step if result is None else step @ result
    assert result is not None
    return result


def chefer_formula(attentions: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """Chefer, Gur & Wolf 2021: R = I; per block R = R + mean_h((grad * A)+) R; (B, N, N)."""
    b, _, n, _ = attentions[0].shape
    r = torch.eye(n, dtype=attentions[0].dtype).expand(b, n, n)
    for a, g in zip(attentions, grads, strict=True):
        r = r + (g * a).clamp(min=0).mean(1) @ r
    return r


def _as_map(r: torch.Tensor, prefix: int, grid: tuple[int, int], size: tuple[int, int]):
    row = r[:, 0, prefix:].reshape(r.shape[0], 1, *grid)
    return F.interpolate(row, size=size, mode="bilinear", align_corners=False)


def _timm_attention(model: nn.Module, x: torch.Tensor, classes: torch.Tensor):
    """Each block's attention and its gradient for the classes' logits, by hooks set here."""
    kept: list[torch.Tensor] = []
    handles = []
    for block in model.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, a, o: kept.append(o)))
    with torch.enable_grad():
        logits = model(x.clone().requires_grad_(True))
        for a in kept:
            a.retain_grad()
        logits.gather(1, classes[:, None]).sum().backward()
    for handle in handles:
        handle.remove()
    for block in model.blocks:
        block.attn.fused_attn = True
    model.zero_grad(set_to_none=True)
    return [a.detach().double() for a in kept], [a.grad.double() for a in kept]


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs).abs().max() / theirs.abs().max())


SMALL = {
    "one prefix token": (dict(img_size=64), (64, 64), 1, (4, 4)),
    "class token and 4 registers": (dict(img_size=64, reg_tokens=4), (64, 64), 5, (4, 4)),
    "a non-square input": (dict(img_size=64, dynamic_img_size=True), (48, 80), 1, (3, 5)),
}


@pytest.mark.parametrize("case", SMALL)
def test_rollouts_equal_the_papers_formulas_on_timm(case: str) -> None:
    extra, size, prefix, grid = SMALL[case]
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        patch_size=16, embed_dim=48, depth=3, num_heads=3, num_classes=6, **extra  # type: ignore[arg-type]
    ).eval()
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(2))
    _check_formulas(model, x, prefix, grid, _timm_attention)


def test_rollouts_equal_the_papers_formulas_with_a_distillation_token() -> None:
    model = _timm("deit_tiny_distilled_patch16_224")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    _check_formulas(model, x, 2, (14, 14), _timm_attention)


def _check_formulas(model, x, prefix, grid, capture) -> None:
    size = tuple(x.shape[-2:])
    before = snapshot(model)
    ours = explain(model, x, "gradient_rollout")
    attention, grads = capture(model, x, ours.targets)
    expected = _as_map(chefer_formula(attention, grads), prefix, grid, size)
    assert expected.std() > 0
    assert _relative(ours.maps.detach(), expected) <= 1e-5
    for fusion in ("mean", "max", "min"):
        rolled = explain(model, x, "rollout", head_fusion=fusion)
        expected = _as_map(rollout_formula(attention, fusion), prefix, grid, size)
        assert _relative(rolled.maps.detach(), expected) <= 1e-5, fusion
    rolled = explain(model, x, "rollout", discard_ratio=0.9)
    expected = _as_map(rollout_formula(attention, "mean", 0.9), prefix, grid, size)
    assert _relative(rolled.maps.detach(), expected) <= 1e-5
    assert_untouched(model, before)  # every hook gone, parameters and flags as they were
    assert all(block.attn.fused_attn for block in getattr(model, "blocks", []))


class _WrittenOut(nn.Module):
    """torchvision's ``nn.MultiheadAttention`` computed step by step with its own weights, its
    attention kept (with its gradient): the test's own reading of the attention."""

    def __init__(self, mha: nn.MultiheadAttention, kept: list[torch.Tensor]) -> None:
        super().__init__()
        self.mha, self.kept = mha, kept

    def forward(self, q, k, v, need_weights=False):
        b, n, d = q.shape
        h = self.mha.num_heads
        qkv = F.linear(q, self.mha.in_proj_weight, self.mha.in_proj_bias)
        qq, kk, vv = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        attention = ((qq @ kk.transpose(-2, -1)) / (d // h) ** 0.5).softmax(-1)
        attention.retain_grad()
        self.kept.append(attention)
        out = (attention @ vv).transpose(1, 2).reshape(b, n, d)
        return self.mha.out_proj(out), None


def _torchvision_attention(model: nn.Module, x: torch.Tensor, classes: torch.Tensor):
    written = copy.deepcopy(model)
    kept: list[torch.Tensor] = []
    for block in written.encoder.layers:
        block.self_attention = _WrittenOut(block.self_attention, kept)
    with torch.enable_grad():
        logits = written(x)
        assert torch.allclose(logits, model(x), atol=1e-5)  # the same model
        logits.gather(1, classes[:, None]).sum().backward()
    return [a.detach().double() for a in kept], [a.grad.double() for a in kept]


def test_rollouts_equal_the_papers_formulas_on_torchvision_s_vit() -> None:
    model = _torchvision_vit(image_size=64, patch_size=16, num_layers=3, num_heads=2,
                             hidden_dim=32, mlp_dim=64)  # fmt: skip
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    _check_formulas(model, x, 1, (4, 4), _torchvision_attention)


def test_a_batch_is_one_forward_and_one_backward_and_equals_its_images_alone() -> None:
    model = _timm("vit_tiny_patch16_224")
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    for method in ("rollout", "gradient_rollout"):
        calls.clear()
        whole = explain(model, x, method).maps
        assert calls == [3], method
        alone = torch.cat([explain(model, x[i : i + 1], method).maps for i in range(3)])
        assert torch.allclose(whole, alone, atol=1e-6), method
    model._forward_pre_hooks.clear()


def test_gradient_rollout_explains_a_similarity_to_a_reference() -> None:
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=64, patch_size=16, embed_dim=48, depth=2, num_heads=3, num_classes=0
    ).eval()  # an embedding: no head
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        reference = model(x[1:])[0]
    ours = explain(model, x, "gradient_rollout", target=SimilarityTarget(reference)).maps
    kept: list[torch.Tensor] = []
    for block in model.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda m, a, o: kept.append(o))
    with torch.enable_grad():
        out = model(x)
        for a in kept:
            a.retain_grad()
        F.cosine_similarity(out, reference.expand_as(out)).sum().backward()
    formula = chefer_formula([a.detach().double() for a in kept], [a.grad.double() for a in kept])
    assert _relative(ours.detach(), _as_map(formula, 1, (4, 4), (64, 64))) <= 1e-5


def test_cnns_and_windowed_attention_are_refused_by_name() -> None:
    cnn = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match="ResNet has no attention"):
        explain(cnn, torch.randn(1, 3, 64, 64), "rollout")
    swin = _timm("swin_tiny_patch4_window7_224")
    with pytest.raises(ValueError, match="SwinTransformer.*windowed Swin"):
        explain(swin, torch.randn(1, 3, 224, 224), "gradient_rollout")
    vit = _timm("vit_tiny_patch16_224")
    for method in ("lrp_epsilon_plus", "lrp_epsilon_gamma_box"):
        with pytest.raises(ValueError, match="a transformer: LRP here has rules for conv"):
            explain(vit, torch.randn(1, 3, 224, 224), method)


class _UnknownTransformer(nn.Module):
    """A transformer whose token layout this library cannot know: a convolution's patches, then
    a plain ``nn.TransformerEncoderLayer`` over them."""

    def __init__(self) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, 16, 8, stride=8)
        self.encoder = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.encoder(tokens)).mean(1))


def test_an_unknown_transformer_s_patch_embedding_is_not_chosen_silently() -> None:
    model = _UnknownTransformer().eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"'patches'.*token sequences"):
        explain(model, x, "gradcam")
    assert explain(model, x, "gradcam", layer="patches").layer == "patches"  # by name: read
    with pytest.raises(ValueError, match="cannot lay out"):
        explain(model, x, "rollout")
    with pytest.raises(ValueError, match=r"'norm' outputs shape \(1, 16, 16\)"):
        explain(model, x, "gradcam", layer="norm")  # a sequence it cannot lay out: refused


def test_the_command_explains_a_timm_vit_from_a_local_checkpoint(tmp_path: Path) -> None:
    weights = tmp_path / "vit.pth"
    torch.save(_timm("vit_tiny_patch16_224").state_dict(), weights)
    model = ("--model", "timm/vit_tiny_patch16_224", "--weights", weights)
    out = tmp_path / "out"
    methods = ("--method", "gradcam", "--method", "rollout", "--method", "gradient_rollout")
    done = cli("explain", SAMPLES / "chelsea.png", SAMPLES / "coffee.jpg", "--out", out, *model,
               *methods)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = manifest_rows(out)
    assert sorted((Path(r["image"]).stem, r["method"]) for r in rows) == [
        (photo, method)
        for photo in ("chelsea", "coffee")
        for method in ("gradcam", "gradient_rollout", "rollout")
    ]
    for row in rows:
        assert row["status"] == "ok" and (out / row["outputs"][0]).is_file()
        assert row["target_name"]
        if row["method"] == "gradcam":
            assert row["layer"] == "blocks.11.norm1"
    vit = load_model("timm/vit_tiny_patch16_224", weights=weights)
    every = expand_methods(["all"], vit.provides)
    assert {"rollout", "gradient_rollout", "gradcam"} <= set(every)
    assert not [name for name in every if name.startswith("lrp_")]
    cnns = expand_methods(["all"], load_model("resnet18", weights="random").provides)
    assert "rollout" not in cnns and "gradient_rollout" not in cnns and "lrp_epsilon_plus" in cnns
    lrp = cli("explain", SAMPLES / "chelsea.png", "--out", tmp_path / "lrp", *model,
              "--method", "lrp_epsilon_plus")  # fmt: skip
    assert lrp.returncode == 2 and "none yet for attention" in lrp.stderr, lrp.stderr
    cnn = cli("explain", SAMPLES / "chelsea.png", "--out", tmp_path / "cnn", "--method", "rollout")
    assert cnn.returncode == 2 and "rollout reads a vision transformer's attention" in cnn.stderr
    assert not (tmp_path / "lrp").exists() or not list((tmp_path / "lrp").rglob("*.png"))


def test_swin_s_default_is_its_final_norm_read_channels_last_in_timm_and_torchvision() -> None:
    x = torch.randn(1, 3, 224, 224)
    assert resolve_layer(_timm("swin_tiny_patch4_window7_224"), x) == "norm:channels_last"
    assert resolve_layer(torchvision.models.swin_t().eval(), x) == "norm:channels_last"


def test_sanity_randomizes_a_vit_block_by_block_from_the_top() -> None:
    timm_steps = randomization_steps(_timm("vit_tiny_patch16_224"), torch.randn(1, 3, 224, 224))
    names = [step.name for step in timm_steps]
    assert names == ["head", "norm", *(f"blocks.{i}" for i in range(11, -1, -1)), "patch_embed"]
    model = _torchvision_vit(image_size=64, patch_size=16, num_layers=3, num_heads=2,
                             hidden_dim=32, mlp_dim=64)  # fmt: skip
    steps = randomization_steps(model, torch.randn(1, 3, 64, 64))
    blocks = [f"encoder.layers.encoder_layer_{i}" for i in (2, 1, 0)]
    assert [s.name for s in steps] == ["heads.head", "encoder.ln", *blocks, "conv_proj"]
    attention = model.encoder.layers[2].self_attention
    before = attention.in_proj_weight.clone()  # nn.MultiheadAttention's own: queries, keys, values
    randomize(model, steps[2], seed=1)
    assert not torch.equal(attention.in_proj_weight, before)


def test_compare_evaluate_and_sanity_take_the_attention_methods(tmp_path: Path) -> None:
    weights = tmp_path / "vit.pth"
    torch.save(_timm("vit_tiny_patch16_224").state_dict(), weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "chelsea.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    judged = compare_evaluate_and_sanity(
        photos, tmp_path / "out", "--model", "timm/vit_tiny_patch16_224", "--weights",
        str(weights), "--method", "rollout", "--method", "gradient_rollout",
    )  # fmt: skip
    assert judged == ["rollout", "gradient_rollout"]
    assert (tmp_path / "out" / "compare" / "chelsea.compare.png").is_file()
