"""What the `classifier` command says when a person gets something slightly wrong: a URL typed
without its scheme or with the API's /v1, a misspelt gallery name or model, a file the server
would refuse; and a cached answer in words."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image

from classifier_client import cli
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"


def test_url_without_scheme_or_with_v1_is_understood(classifier, server: Server) -> None:
    host_port = server.url.removeprefix("http://")
    for url in (host_port, f"{server.url}/v1", f"{server.url}/v1/", f"{host_port}/v1"):
        result = classifier("--url", url, "models", "--json")
        assert result.returncode == 0, (url, result.stderr)
        assert "efficientnet_lite0" in result.stdout

    bad = classifier("--url", "ftp://127.0.0.1:21", "models")
    assert bad.returncode == 2
    assert "not an http(s) URL" in bad.stderr


def test_unknown_gallery_name_gets_the_closest_names(classifier) -> None:
    typo = classifier("submit", "--image", "n01531178_goldfnch.JPEG")
    assert typo.returncode == 3
    assert f"did you mean {GOLDFINCH}?" in typo.stderr, typo.stderr

    label = classifier("submit", "--image", "goldfinch")  # the label, not the file name
    assert label.returncode == 3
    assert f"did you mean {GOLDFINCH}" in label.stderr, label.stderr


def test_unknown_model_lists_the_models_served(classifier, server: Server) -> None:
    served = [m["name"] for m in httpx.get(f"{server.url}/v1/models").json() if m["available"] and m["pool"]]
    result = classifier("submit", "--model", "efficientnet_lite9", "--image", GOLDFINCH)
    assert result.returncode == 3
    assert f"models served here: {', '.join(served)}" in result.stderr, result.stderr
    assert "did you mean efficientnet_lite" in result.stderr


def test_file_the_server_would_refuse_is_refused_before_upload(classifier, server: Server, tmp_path: Path) -> None:
    limit = httpx.get(f"{server.url}/v1/info").json()["max_upload_bytes"]
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (limit + 1))
    result = classifier("submit", "--file", str(big))
    assert result.returncode == 2, result.stderr
    # the file's own size, then the limit, each once
    assert f"big.jpg is {limit + 1:,} bytes; the server accepts at most {limit:,} bytes" in result.stderr
    assert result.stderr.count(f"{limit:,}") == 1, result.stderr

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    result = classifier("submit", "--file", str(notes))
    assert result.returncode == 2, result.stderr
    assert "notes.txt is not an image format the server accepts (text/plain)" in result.stderr
    assert "accepted: BMP, GIF, JPEG, PNG, TIFF, WEBP" in result.stderr


def test_cached_answer_says_cached_result(classifier) -> None:
    for _ in range(2):  # the second identical job is answered from the first
        result = classifier("submit", "--image", GOLDFINCH, "--wait")
        assert result.returncode == 0, result.stderr
    assert re.search(r"· cached result \(originally \d+ ms\)", result.stdout), result.stdout
    assert "inference" not in result.stdout


def test_413_from_a_server_that_does_not_publish_its_limit_gives_the_files_size(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a server without /v1/info's limits (an older one): the file goes up and the server refuses it
    monkeypatch.setattr(cli, "published_limits", lambda ctx: {}, raising=False)
    limit = httpx.get(f"{server.url}/v1/info").json()["max_upload_bytes"]
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (limit + 1))
    code = cli.main(["--url", server.url, "submit", "--file", str(big)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"big.jpg is {limit + 1:,} bytes; the server accepts at most {limit:,} bytes (HTTP 413" in err, err
    assert err.count(f"{limit:,}") == 1, err  # the limit once, not repeated


def test_undecodable_image_is_explained_in_plain_words(classifier, tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    png = tmp_path / "broken.png"
    out = io.BytesIO()
    Image.open(seeded[1] / "n07747607_orange.JPEG").save(out, format="PNG")
    png.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])  # the pixel data stops half-way
    result = classifier("submit", "--file", str(png))
    assert result.returncode == 3, result.stderr
    lead, _, detail = result.stderr.partition("; details: ")
    assert "broken.png looks like an image, but its data is damaged or cut off (HTTP 422 invalid_image)" in lead
    assert "decoded" not in lead  # the decoder's words come after, as a detail
    assert detail.startswith("the image could not be decoded"), result.stderr
