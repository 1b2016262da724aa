"""The public contract of explain() and the rule layer."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saliency import RuleCoverageWarning, RuleError, RuleHooks, explain
from saliency.engine.passes import forward_pass
from tests.helpers import RULE_METHODS as METHODS


def torch_functions():
    """The torch functions a patching library would replace."""
    return {
        "F.relu": F.relu,
        "F.relu6": F.relu6,
        "F.hardtanh": F.hardtanh,
        "torch.relu": torch.relu,
        "torch.relu_": torch.relu_,
        "Tensor.relu": torch.Tensor.relu,
        "Tensor.relu_": torch.Tensor.relu_,
    }


ORIGINALS = torch_functions()


class SmallCNN(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, classes)
        self.fail = False

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)), inplace=True)
        if self.fail:
            raise RuntimeError("boom mid-forward")
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(self.drop(x.mean((2, 3))))


def snapshot(model):
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "params": [p.detach().clone() for p in model.parameters()],
    }


def assert_untouched(model, before):
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for a, b in zip(after["grad"], before["grad"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for key in ("buffers", "params"):
        for a, b in zip(after[key], before[key], strict=True):
            assert torch.equal(a, b)
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
        assert not m._backward_pre_hooks
    hooks = nn.modules.module
    assert not (hooks._global_forward_hooks or hooks._global_forward_pre_hooks)
    assert not (hooks._global_backward_hooks or hooks._global_backward_pre_hooks)
    assert torch_functions() == ORIGINALS


def training_model():
    model = SmallCNN().train()
    model.conv1.weight.requires_grad_(False)  # a partly frozen model must stay so
    model.fc.weight.grad = torch.ones_like(model.fc.weight)  # an existing .grad must stay
    return model


@pytest.mark.parametrize("method", METHODS)
def test_model_left_as_it_was(method):
    model = training_model()
    before = snapshot(model)
    result = explain(model, torch.randn(3, 3, 8, 8), method)
    assert result.maps.shape == (3, 3, 8, 8)
    assert_untouched(model, before)


@pytest.mark.parametrize("method", METHODS)
def test_model_left_as_it_was_after_exception_mid_forward(method):
    model = training_model()
    model.fail = True
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        explain(model, torch.randn(2, 3, 8, 8), method)
    assert_untouched(model, before)


def test_runs_in_eval_mode_with_frozen_parameters():
    model, seen = training_model(), []
    model.register_forward_pre_hook(
        lambda m, a: seen.append((m.training, [p.requires_grad for p in m.parameters()]))
    )
    explain(model, torch.randn(2, 3, 8, 8))
    assert seen == [(False, [False] * len(list(model.parameters())))]
    assert model.training


class CountBackward(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        CountBackward.calls += 1
        return g


def test_one_forward_and_one_backward_for_the_batch():
    model = SmallCNN()
    forwards = []
    model.register_forward_hook(lambda *a: forwards.append(1))
    CountBackward.calls = 0
    wrapped = nn.Sequential(model)
    wrapped.register_forward_pre_hook(lambda m, a: (CountBackward.apply(a[0]),))
    x, targets = torch.randn(4, 3, 8, 8), [0, 1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuleCoverageWarning)  # the counter is a custom function
        result = explain(wrapped, x, "guided", targets)
    assert len(forwards) == 1 and CountBackward.calls == 1
    # each sample got its own target: same maps as one sample at a time
    for i in range(4):
        single = explain(model, x[i : i + 1], "guided", targets[i]).maps
        torch.testing.assert_close(result.maps[i : i + 1], single)


def test_targets():
    model, x = SmallCNN(), torch.randn(3, 3, 8, 8)
    top1 = explain(model, x)
    assert top1.targets.dtype == torch.long
    assert torch.equal(top1.targets, top1.logits.argmax(1))
    assert explain(model, x, target=4).targets.tolist() == [4, 4, 4]
    assert explain(model, x, target=[0, 2, 4]).targets.tolist() == [0, 2, 4]
    assert explain(model, x, target=torch.tensor([1, 1, 3])).targets.tolist() == [1, 1, 3]
    assert top1.logits.requires_grad is False and top1.logits.shape == (3, 5)
    assert top1.method == "guided" and explain(model, x, "GRADIENT").method == "gradient"


@pytest.mark.parametrize(
    "target, message",
    [
        (5, r"out of range: valid classes are 0\.\.4"),
        (-1, r"out of range"),
        ([0, 1], "2 entries for a batch of 3"),
        (torch.tensor([0.0, 1.0, 2.0]), "integers"),
        (True, "bool"),
        ("cat", "ints"),
    ],
)
def test_bad_targets(target, message):
    with pytest.raises(ValueError, match=message):
        explain(SmallCNN(), torch.randn(3, 3, 8, 8), target=target)


def test_bad_method_and_inputs():
    valid = (
        "valid methods: gradient, deconvnet, guided, gradcam, guided_gradcam, "
        "integrated_gradients, gradient_x_input, lrp_epsilon_plus, lrp_epsilon_plus_flat, "
        "lrp_epsilon_gamma_box, lrp_epsilon_alpha2_beta1_flat, gradcam_plus_plus, xgradcam, "
        "layercam, hirescam, eigencam, scorecam, rollout, gradient_rollout, occlusion, rise, drise$"
    )
    with pytest.raises(ValueError, match=valid):
        explain(SmallCNN(), torch.randn(1, 3, 8, 8), method="lrp")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        explain(SmallCNN(), torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match=r"a class target needs a classifier.s output \(B, K\)"):
        explain(nn.Conv2d(3, 2, 1), torch.randn(1, 3, 8, 8))


def test_works_inside_no_grad_and_inference_mode():
    model, x = SmallCNN(), torch.randn(2, 3, 8, 8)
    expected = explain(model, x, "deconvnet").maps
    with torch.no_grad():
        torch.testing.assert_close(explain(model, x, "deconvnet").maps, expected)
    with torch.inference_mode():
        torch.testing.assert_close(explain(model, x, "deconvnet").maps, expected)


def test_warns_when_no_unit_found():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.SiLU(), nn.Linear(3, 2))
    with pytest.warns(RuleCoverageWarning, match="guided: no ReLU-family unit.*1 SiLU unit kept"):
        explain(model, torch.randn(2, 3, 2, 2))


def test_scripted_and_compiled_models_are_refused():
    model = SmallCNN()
    with pytest.raises(RuleError, match="TorchScript"):
        explain(
            torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(3, 2), nn.ReLU())),
            torch.randn(1, 3, 1, 1),
        )
    with pytest.raises(RuleError, match="torch.compile"):
        explain(torch.compile(model), torch.randn(1, 3, 8, 8))


@pytest.mark.slow
def test_compiled_submodule_is_refused():
    """A compiled piece inside an eager model is found in the graph, not guessed."""
    model = SmallCNN()
    model.conv2 = torch.compile(nn.Sequential(model.conv2, nn.ReLU()), backend="aot_eager")
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(RuleError, match="torch.compile graph"):
        explain(model, x, "guided")
    assert explain(model, x, "gradient").maps.shape == x.shape  # the true gradient is still right


def test_rule_hooks_by_hand():
    """The rule layer on its own, for people who drive autograd themselves."""
    model = SmallCNN().eval()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    logits = model(x)
    with RuleHooks(logits, "guided") as report:
        (guided,) = torch.autograd.grad(logits[:, 1].sum(), x, retain_graph=True)
    assert report.units == {"ReLU": 2}
    (plain,) = torch.autograd.grad(logits[:, 1].sum(), x)  # hooks gone after the block
    torch.testing.assert_close(guided, explain(model, x, "guided", 1).maps)
    torch.testing.assert_close(plain, explain(model, x, "gradient", 1).maps)


def test_one_forward_serves_several_methods():
    model, x = SmallCNN(), torch.randn(2, 3, 8, 8)
    with forward_pass(model, x) as graph:
        targets = graph.logits.argmax(1)
        maps = {m: maps for m, (maps, _) in graph.shared(METHODS, targets).items()}
    for method in METHODS:
        torch.testing.assert_close(maps[method], explain(model, x, method).maps)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_cuda(method):
    model, x = SmallCNN(), torch.randn(2, 3, 8, 8)
    expected = explain(model, x, method).maps
    result = explain(model.cuda(), x.cuda(), method)
    assert result.maps.device.type == "cuda" and result.targets.device.type == "cuda"
    torch.testing.assert_close(result.maps.cpu(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "method",
    ["gradcam", "integrated_gradients", "occlusion", "rise", "lrp_epsilon_plus",
     "lrp_epsilon_alpha2_beta1_flat"],
)  # fmt: skip
def test_cuda_other_methods(method):
    """Methods with passes of their own give on the GPU what they give on the CPU."""
    torch.manual_seed(0)
    model, x = SmallCNN(), torch.randn(2, 3, 8, 8)
    settings = {
        "occlusion": {"window": 4, "stride": 2, "baseline": "zero"},
        "rise": {"masks": 64},
        "integrated_gradients": {"baseline": "zero", "steps": 8},
    }
    expected = explain(model, x, method, **settings.get(method, {})).maps
    result = explain(model.cuda(), x.cuda(), method, **settings.get(method, {}))
    assert result.maps.device.type == "cuda"
    torch.testing.assert_close(result.maps.cpu(), expected, rtol=1e-3, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_target_tensor_out_of_range_is_a_value_error():
    model, x = SmallCNN().cuda(), torch.randn(2, 3, 8, 8, device="cuda")
    with pytest.raises(ValueError, match=r"out of range: valid classes are 0\.\.4"):
        explain(model, x, target=torch.tensor([1, 9], device="cuda"))
    assert explain(model, x, target=torch.tensor([1, 4], device="cuda")).targets.tolist() == [1, 4]
