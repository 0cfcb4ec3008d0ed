"""Preprocessing, softmax and top-5 are numpy, whatever runs the model, and compute what the torch
versions they replace computed: the normalised batch bit for bit and in the same memory layout
(so the torch runtimes' convolutions see the very same input), the scores to float rounding, the
top-5 in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from classifier_common.catalog import get_spec
from classifier_worker.models import softmax, top_k
from classifier_worker.preprocess import Normalizer


def torch_normalize(images: list[Image.Image], mean: tuple, std: tuple) -> torch.Tensor:
    """The worker's normalisation as it was written in torch."""
    arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])
    batch = torch.from_numpy(arrays).permute(0, 3, 1, 2).float()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    inv_std = 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - mean_t) * inv_std


# EfficientNet-Lite's (127, 128) and torchvision's ImageNet mean and std.
@pytest.mark.parametrize("model", ["efficientnet_lite0", "efficientnet_lite2", "resnet18"])
def test_the_batch_is_torchs_bit_for_bit_in_the_same_layout(model: str) -> None:
    spec = get_spec(model)
    rng = np.random.default_rng(0)
    size = spec.input_size
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(3)]
    batch = Normalizer(spec)(images)
    expected = torch_normalize(images, spec.mean, spec.std)
    assert batch.dtype == np.float32 and batch.shape == (3, 3, size, size)
    assert np.array_equal(batch.view(np.uint32), expected.numpy().view(np.uint32))
    assert torch.from_numpy(batch).stride() == expected.stride()


def test_softmax_and_top5_are_torchs() -> None:
    logits = torch.randn(8, 1000, generator=torch.Generator().manual_seed(0)) * 4
    scores, indices = top_k(logits.numpy(), 5)
    expected = logits.softmax(dim=1).topk(5, dim=1)
    assert np.array_equal(indices, expected.indices.numpy())
    np.testing.assert_allclose(scores, expected.values.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(softmax(logits.numpy()).sum(axis=1), 1.0, rtol=1e-6)


def test_classes_of_equal_score_rank_by_logit_then_index() -> None:
    # Untrained weights give logits so close that their scores round to the same float32.
    logits = np.array([[1e-10, 3e-10, 2e-10, 3e-10, -1e-10, 0.0]], dtype=np.float32)
    scores, indices = top_k(logits, 5)
    assert len(set(scores[0].tolist())) == 1
    assert indices[0].tolist() == [1, 3, 2, 0, 5]


def test_softmax_does_not_overflow() -> None:
    probabilities = softmax(np.array([[1000.0, 999.0, -1000.0]], dtype=np.float32))
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities[0, :2], [0.7310586, 0.2689414], rtol=1e-6)
