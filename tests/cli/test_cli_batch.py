"""`classifier submit --file a.jpg b.jpg ...`: several files as one batch, through the entry point
against the real embedded system: a summary table, --json, exit codes, and a progress bar only
on a terminal."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from classifier_client.cli_batch import summary_table
from tests.cli.conftest import CLASSIFIER
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"
JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


def photos(tmp_path: Path, gallery: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        target = tmp_path / name
        shutil.copy(gallery / name, target)
        paths.append(str(target))
    return paths


def test_several_files_are_one_batch_with_a_summary_table(classifier, tmp_path, seeded) -> None:
    files = photos(tmp_path, seeded[1], GOLDFINCH, ORANGE)
    result = classifier("submit", "--file", *files, "--timeout", "180")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"submitted batch [0-9a-f]{32} \(2 jobs\)", result.stderr)
    assert "━" not in result.stderr  # no progress bar when stderr is not a terminal
    rows = {name: line for line in result.stdout.splitlines() for name in (GOLDFINCH, ORANGE) if name in line}
    assert set(rows) == {GOLDFINCH, ORANGE}, result.stdout
    assert "succeeded" in rows[GOLDFINCH] and "goldfinch" in rows[GOLDFINCH].replace(GOLDFINCH, "")
    assert "orange" in rows[ORANGE].replace(ORANGE, "") and re.search(r"\d+\.\d\d%", rows[ORANGE])
    assert len(set(JOB_ID.findall(result.stdout))) == 3  # two jobs and the batch in the title


def test_json_is_the_finished_batch(classifier, tmp_path, seeded, server: Server) -> None:
    files = photos(tmp_path, seeded[1], GOLDFINCH, ORANGE)
    result = classifier("submit", "--file", *files, "--json", "--timeout", "180")
    assert result.returncode == 0, result.stderr
    batch = json.loads(result.stdout)
    assert batch["status"] == "done" and batch["counts"]["succeeded"] == 2
    assert [item["result"]["predictions"][0]["label"] for item in batch["items"]] == ["goldfinch", "orange"]


def test_one_bad_file_is_refused_alone_and_exit_is_1(classifier, tmp_path, seeded) -> None:
    files = photos(tmp_path, seeded[1], GOLDFINCH)
    broken = tmp_path / "broken.jpg"  # a name the server accepts, bytes it does not
    broken.write_bytes(b"not a jpeg at all")
    notes = tmp_path / "notes.txt"  # refused before sending: not an accepted format
    notes.write_text("hello")
    result = classifier("submit", "--file", *files, str(broken), str(notes), "--timeout", "180")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped: notes.txt is not an image format" in result.stderr
    lines = result.stdout.splitlines()
    assert "succeeded" in next(line for line in lines if GOLDFINCH in line)
    broken_row = next(line for line in lines if "broken.jpg" in line)
    assert "refused" in broken_row and "unsupported_media_type" in result.stdout
    assert "refused" in next(line for line in lines if "notes.txt" in line)


def test_every_file_refused_by_the_server_exits_3(classifier, tmp_path) -> None:
    files = []
    for i in range(2):
        path = tmp_path / f"fake{i}.png"
        path.write_bytes(b"nope")
        files.append(str(path))
    result = classifier("submit", "--file", *files)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "batch_refused" in result.stderr and "fake0.png: unsupported_media_type" in result.stderr


def test_progress_bar_on_a_terminal(tmp_path, seeded, server: Server) -> None:
    files = photos(tmp_path, seeded[1], GOLDFINCH, ORANGE)
    leader, follower = os.openpty()
    env = {**os.environ, "CLASSIFIER_URL": server.url, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(
        [str(CLASSIFIER), "submit", "--file", *files, "--timeout", "180"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    stdout, _ = process.communicate(timeout=180)
    os.close(leader)
    assert process.returncode == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "batch " in text and "/2" in text and "━" in text, text  # the bar and N/2 finished
    assert b"goldfinch" in stdout  # the table still goes to stdout


def test_the_summary_keeps_each_outcome_and_whole_job_id_in_80_columns() -> None:
    """Long file names and labels wrap; status, label, score and the job id to follow up stay."""
    job_id = "d9c831db802343ef9364c2157c0bf7dc"
    salamander = {"label": "European fire salamander", "class_index": 25, "score": 0.9581}
    batch = {
        "id": "3b1fd54f3356b7941644aa35d198af08",
        "total": 1,
        "items": [
            {
                "image": "n01629819_European_fire_salamander_from_the_camera_roll.jpg",
                "job_id": job_id,
                "status": "succeeded",
                "result": {"predictions": [salamander]},
                "error": None,
            }
        ],
    }
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(batch, [("notes.txt", "not an image format the server accepts")]))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    first, refused = (line for line in text.splitlines() if line.startswith("│ n0162") or "notes" in line)
    assert "succeeded" in first and "European" in first and "95.81%" in first and job_id in first
    assert "refused" in refused and "not an" in refused
