"""The inference rewrite (classifier_worker.optimize): same outputs as the model it came from,
BatchNorms folded, in-place activations only where nothing else reads their input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from classifier_common.catalog import get_spec
from classifier_worker.models import build_module
from classifier_worker.optimize import for_inference


def _randomise_batch_norms(module: nn.Module) -> nn.Module:
    """Freshly built BatchNorms are the identity; give them statistics so folding has work to do."""
    generator = torch.Generator().manual_seed(0)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            size = bn.num_features
            bn.running_mean.copy_(torch.rand(size, generator=generator) * 2 - 1)
            bn.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            bn.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)
    return module.eval()


def _count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_large"])
def test_same_outputs_without_batch_norms(name: str) -> None:
    model = _randomise_batch_norms(build_module(get_spec(name)))
    assert _count(model, nn.BatchNorm2d) > 0
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x)
        rewritten = for_inference(model)
        before = x.clone()
        got = rewritten(x)
    assert _count(rewritten, nn.BatchNorm2d) == 0
    assert torch.equal(x, before), "the rewritten model wrote into its input"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_lite0_real_weights_same_top5(seeded: tuple[Path, Path]) -> None:
    models_dir, _ = seeded
    spec = get_spec("efficientnet_lite0")
    model = build_module(spec)
    model.load_state_dict(torch.load(spec.weights_path(models_dir), map_location="cpu", weights_only=True))
    model.eval()
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model(x)
        got = for_inference(model)(x)
    assert torch.equal(got.topk(5).indices, expected.topk(5).indices)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


class _SharedConv(nn.Module):
    """A convolution whose output is read by its BatchNorm and by a residual sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.act(self.bn(y)) + y


def test_a_convolution_read_twice_keeps_its_batch_norm() -> None:
    model = _randomise_batch_norms(_SharedConv())
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        expected = model(x)
        rewritten = for_inference(model)
        got = rewritten(x)
    assert _count(rewritten, nn.BatchNorm2d) == 1
    torch.testing.assert_close(got, expected)


class _ReluOnInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x) * 2


def test_an_activation_of_the_input_is_not_made_in_place() -> None:
    x = torch.randn(1, 3, 4, 4) * 10
    before = x.clone()
    with torch.inference_mode():
        got = for_inference(_ReluOnInput())(x)
    assert torch.equal(x, before)
    torch.testing.assert_close(got, before.clamp(0, 6) * 2)


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_an_untraceable_model_is_used_as_it_is() -> None:
    model = _DataDependent()
    assert for_inference(model) is model


def test_lite0_symmetric_same_padding_moves_into_its_convolutions() -> None:
    model = build_module(get_spec("efficientnet_lite0")).eval()
    pads = [m.padding for m in model.modules() if isinstance(m, nn.ZeroPad2d)]
    symmetric = [p for p in pads if p[0] == p[1] and p[2] == p[3]]
    assert symmetric and len(symmetric) < len(pads)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = model(x)
        rewritten = for_inference(model)
        got = rewritten(x)
    left = [m.padding for m in rewritten.modules() if isinstance(m, nn.ZeroPad2d)]
    assert len(left) == len(pads) - len(symmetric)  # the stride-2 ones, padded on one side, stay
    assert all(p[0] != p[1] or p[2] != p[3] for p in left)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_rewrite_never_breaks_a_model_running_in_another_thread() -> None:
    """Tracing patches torch.nn.Module.__call__ process-wide: without RUNNING, a model running in
    another thread meanwhile raised NameError('module is not installed as a submodule')."""
    import threading

    from classifier_worker.optimize import RUNNING

    running = build_module(get_spec("efficientnet_lite0")).eval()
    x = torch.randn(1, 3, 64, 64)
    errors: list[str] = []
    runs = 0
    stop = threading.Event()

    def run() -> None:
        nonlocal runs
        while not stop.is_set():
            try:
                with RUNNING.shared(), torch.inference_mode():
                    running(x)
                runs += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(3):
            assert _count(for_inference(build_module(get_spec("efficientnet_lite0"))), nn.BatchNorm2d) == 0
    finally:
        stop.set()
        thread.join()
    assert errors == [] and runs > 0


def test_exclusive_waits_for_shared_holders_and_goes_before_new_ones() -> None:
    import threading

    from classifier_worker.optimize import SharedExclusive

    lock = SharedExclusive()
    order: list[str] = []
    release = threading.Event()

    def exclusive() -> None:
        with lock.exclusive():
            order.append("exclusive")
            release.wait(5)

    def shared() -> None:
        with lock.shared():
            order.append("shared again")

    writer = threading.Thread(target=exclusive)
    with lock.shared(), lock.shared():  # shared holders do not exclude each other
        writer.start()
        writer.join(0.2)
        assert writer.is_alive() and order == []  # it waits while shared holders remain
        reader = threading.Thread(target=shared)
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and order == []  # a new shared holder waits behind the writer
        order.append("shared done")
    writer.join(0.2)
    assert order == ["shared done", "exclusive"]
    release.set()
    writer.join(2)
    reader.join(2)
    assert order == ["shared done", "exclusive", "shared again"]
