"""Ground truth through the HTTP API: EfficientNet-Lite0 must get at least 37 of the 41 gallery
photos right at top-1. A drop means preprocessing or the label mapping broke."""

from __future__ import annotations

import httpx

from tests.utils.api import wait_for_job

MIN_CORRECT = 37


def test_lite0_gallery_top1_accuracy(api: httpx.Client, gallery_labels: dict[str, int]) -> None:
    locations = {}
    for name in gallery_labels:
        response = api.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": name})
        assert response.status_code == 202, response.text
        locations[name] = response.headers["location"]
    wrong = {}
    for name, location in locations.items():
        job = wait_for_job(api, location)
        top1 = job["result"]["predictions"][0]
        if top1["class_index"] != gallery_labels[name]:
            wrong[name] = top1["label"]
    correct = len(gallery_labels) - len(wrong)
    print(f"\nefficientnet_lite0 gallery top-1: {correct}/{len(gallery_labels)}; wrong: {wrong}")
    assert correct >= MIN_CORRECT, wrong
