"""store.type sqlite: the single-node store option (values.yaml `store`), over the rendered
objects. `make container-e2e` runs the images from this render."""

from __future__ import annotations

import pytest

from tests.k8s.chart import CHART, RenderError, containers, env_of, find, one, pod_spec, render, validate

SQLITE = ("--values", str(CHART / "ci" / "sqlite-store-values.yaml"))
STORE_USERS = ("classifier-gateway", "classifier-results", "classifier-worker-default")


def test_sqlite_renders_no_mongodb_and_validates() -> None:
    objects = render(*SQLITE)
    assert not [o for o in objects if "mongodb" in o["metadata"]["name"]]
    for obj in objects:
        validate(obj)


@pytest.mark.parametrize("deployment", STORE_USERS)
def test_every_store_user_mounts_the_one_claim_and_points_at_the_file(deployment: str) -> None:
    objects = render(*SQLITE)
    spec = pod_spec(one(objects, "Deployment", deployment))
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["CLASSIFIER_STORE_URL"]["value"] == "sqlite:////var/lib/classifier/store/jobs.db"
    assert "CLASSIFIER_STORE_USERNAME" not in env and "CLASSIFIER_STORE_PASSWORD" not in env
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["store"]["mountPath"] == "/var/lib/classifier/store"
    assert not mounts["store"].get("readOnly")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "classifier-store"


def test_the_claim_is_read_write_once_and_kept_on_uninstall() -> None:
    claim = one(render(*SQLITE), "PersistentVolumeClaim", "classifier-store")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_an_existing_claim_is_used_and_none_is_made() -> None:
    objects = render(*SQLITE, "--set", "store.sqlite.existingClaim=my-jobs")
    assert not find(objects, "PersistentVolumeClaim", "classifier-store")
    for deployment in STORE_USERS:
        volumes = {v["name"]: v for v in pod_spec(one(objects, "Deployment", deployment))["volumes"]}
        assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "my-jobs"


def test_the_default_stays_mongodb_without_a_store_volume() -> None:
    objects = render()
    one(objects, "StatefulSet", "classifier-mongodb")
    assert not find(objects, "PersistentVolumeClaim", "classifier-store")
    for deployment in STORE_USERS:
        for _, container in containers(one(objects, "Deployment", deployment)):
            assert "store" not in {m["name"] for m in container.get("volumeMounts", [])}
        env = env_of(pod_spec(one(objects, "Deployment", deployment))["containers"][0])
        assert env["CLASSIFIER_STORE_URL"]["value"].startswith("mongodb://")


def test_the_seed_job_does_not_touch_the_store() -> None:
    objects = render(*SQLITE)
    job = next(o for o in objects if o["kind"] == "Job")
    assert "store" not in {v["name"] for v in pod_spec(job)["volumes"]}


def test_an_unknown_store_type_is_refused() -> None:
    with pytest.raises(RenderError, match="store"):
        render("--set", "store.type=postgres")
