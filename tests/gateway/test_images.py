"""GET /v1/images with bad files in the gallery folder: the gallery answers 200 with the good
photos, and the page, /v1/info and readiness keep working."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from classifier_gateway.main import create_app
from tests.utils.api import assert_error_shape
from tests.utils.corrupt_images import unlisted_gallery_files
from tests.utils.settings import embedded_settings

PHOTOS = ["n01440764_tench.JPEG", "n01531178_goldfinch.JPEG"]


def test_bad_gallery_files_are_left_out_of_every_answer(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    models_dir, seeded_gallery = seeded
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name in PHOTOS:
        shutil.copy(seeded_gallery / name, gallery / name)
    bad = unlisted_gallery_files()
    for name, data in bad.items():
        (gallery / name).write_bytes(data)
    settings = embedded_settings(tmp_path, (models_dir, gallery), spool_dir=None)
    with TestClient(create_app(settings)) as client:
        listing = client.get("/v1/images")
        assert listing.status_code == 200, listing.text
        assert [image["name"] for image in listing.json()] == PHOTOS
        assert client.get(f"/v1/images/{PHOTOS[1]}").content == (gallery / PHOTOS[1]).read_bytes()
        for name in bad:
            assert_error_shape(client.get(f"/v1/images/{name}"), 404, "not_found")
            refused = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": name})
            assert_error_shape(refused, 422, "unknown_image")
        info = client.get("/v1/info")
        assert info.status_code == 200 and info.json()["images"] == PHOTOS
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["gallery"] == "ok", ready.text
        assert client.get("/").status_code == 200


def test_a_photo_is_revalidated_and_a_replaced_one_is_served_anew(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    """The browser keeps a photo but asks each time whether it changed: 304 while it did not, the
    new bytes once a photo was replaced under the same name (the gallery follows its directory)."""
    models_dir, seeded_gallery = seeded
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(seeded_gallery / PHOTOS[0], gallery / PHOTOS[0])
    settings = embedded_settings(tmp_path, (models_dir, gallery), spool_dir=None)
    url = f"/v1/images/{PHOTOS[0]}"
    with TestClient(create_app(settings)) as client:
        first = client.get(url)
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        etag = first.headers["etag"]
        unchanged = client.get(url, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
        assert client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200

        replacement = tmp_path / "replacement"
        shutil.copy(seeded_gallery / PHOTOS[1], replacement)
        replacement.replace(gallery / PHOTOS[0])  # renamed into place, as a deploy would
        replaced = client.get(url, headers={"If-None-Match": etag})
        assert replaced.status_code == 200 and replaced.content == (seeded_gallery / PHOTOS[1]).read_bytes()
        assert replaced.headers["etag"] != etag
