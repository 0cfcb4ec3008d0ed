"""The one-process system (`make run POOLS=...`) runs a worker per pool, each on its pool's
in-process queue: every pool's jobs are served and the results service hears them all."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_standalone.app import create_app

POOLS = "lite=efficientnet_lite0;big=efficientnet_lite2"


def test_a_worker_per_pool_serves_its_models(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = Settings(
        broker_url=f"memory://standalone-{uuid.uuid4().hex}",
        store_url=f"sqlite:///{tmp_path}/jobs.db",
        models_dir=seeded[0],
        gallery_dir=seeded[1],
        spool_dir=tmp_path / "queue",
        pools=POOLS,
        runtime="torch",
        log_format="text",
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 180
        while (ready := client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.json()
            time.sleep(0.2)
        assert {"worker-lite", "worker-big"} <= set(ready.json()["checks"])

        ids = {}
        for model in ("efficientnet_lite0", "efficientnet_lite2"):
            response = client.post("/v1/jobs", json={"model": model, "image": "n01531178_goldfinch.JPEG"})
            assert response.status_code == 202, response.text
            ids[model] = response.json()["id"]
        for model, job_id in ids.items():
            job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            assert job["status"] == "succeeded", (model, job)
            assert job["result"]["predictions"][0]["label"] == "goldfinch"

        models = {m["name"]: m for m in client.get("/v1/models").json()}
        assert (models["efficientnet_lite0"]["pool"], models["efficientnet_lite0"]["pool_ready"]) == ("lite", True)
        assert (models["efficientnet_lite2"]["pool"], models["efficientnet_lite2"]["pool_ready"]) == ("big", True)
        response = client.post("/v1/jobs", json={"model": "efficientnet_lite1", "image": "n01531178_goldfinch.JPEG"})
        assert response.status_code == 422 and response.json()["error"]["code"] == "model_not_served"
    assert [p.name for p in sorted((tmp_path / "queue" / "pools").iterdir())] == ["big", "lite"]
