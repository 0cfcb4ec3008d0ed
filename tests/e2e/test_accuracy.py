"""Ground truth through the HTTP API: EfficientNet-Lite0 must get at least 37 of the 41 gallery
photos right at top-1. A drop means preprocessing or the label mapping broke."""

from __future__ import annotations

from classifier_client import Client

MIN_CORRECT = 37


def test_lite0_gallery_top1_accuracy(base_url: str, gallery_labels: dict[str, int]) -> None:
    wrong = {}
    with Client(base_url) as client:
        for outcome in client.submit_many("efficientnet_lite0", images=gallery_labels, timeout=120):
            assert outcome.error is None and outcome.job is not None, outcome
            assert outcome.job["status"] == "succeeded", outcome.job
            top1 = outcome.job["result"]["predictions"][0]  # type: ignore[index]
            if top1["class_index"] != gallery_labels[outcome.item]:
                wrong[outcome.item] = top1["label"]
    correct = len(gallery_labels) - len(wrong)
    print(f"\nefficientnet_lite0 gallery top-1: {correct}/{len(gallery_labels)}; wrong: {wrong}")
    assert correct >= MIN_CORRECT, wrong
