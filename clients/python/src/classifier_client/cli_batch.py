"""``classifier submit --file a.jpg b.jpg ...``: several files sent as one batch (POST
/v1/batches), a progress bar on stderr while the jobs run (on a terminal only), then a summary
table, or the batch's JSON with ``--json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from classifier_client.bodies import Batch, BatchItem, Info
from classifier_client.errors import ApiError

if TYPE_CHECKING:
    from classifier_client.cli import Context

POLL_S = 0.5
STATUS_STYLE = {"succeeded": "green", "failed": "red", "canceled": "red", "refused": "red", "expired": "dim"}
FINISHED_ITEM = frozenset({"succeeded", "failed", "canceled", "refused", "expired"})


def summary_table(batch: Batch, local: list[tuple[str, str]]) -> Table:
    """One row per file: the server's items, then those refused here before sending. The
    outcome (status, top label, score) and the whole job id stay readable in 80 columns: long file
    names and labels wrap instead."""
    done = sum(1 for item in batch["items"] if item["status"] in FINISHED_ITEM)
    table = Table(title=f"Batch {batch['id']} · {done}/{batch['total']} finished", title_justify="left")
    table.add_column("file", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("top label", overflow="fold", min_width=8)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("job id", no_wrap=True, min_width=32)  # what `classifier status` takes: never cut
    for item in batch["items"]:
        table.add_row(*_row(item))
    for name, reason in local:
        table.add_row(name, Text("refused", style="red"), Text(reason, style="red"), "", "")
    return table


def _row(item: BatchItem) -> tuple[str, Text, Text | str, str, str]:
    status = Text(item["status"], style=STATUS_STYLE.get(item["status"], "yellow"))
    result, error, job_id = item["result"], item["error"], item["job_id"] or ""
    if result and result["predictions"]:
        top = result["predictions"][0]
        return item["image"], status, top["label"], f"{top['score'] * 100:.2f}%", job_id
    reason = Text(f"{error['code']}: {error['message']}", style="red") if error else ""
    return item["image"], status, reason, "", job_id


def run(ctx: Context, model: str, paths: list[Path], info: Info, timeout: float) -> int:
    from classifier_client.cli import EXIT_JOB_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, Upload, refusal

    def usage_error(text: str) -> int:
        ctx.err.print(Text.assemble(("error: ", "bold red"), text), soft_wrap=True)
        return EXIT_USAGE

    limit = info.get("batch_max_items")
    if limit is not None and len(paths) > limit:
        return usage_error(f"{len(paths)} files; the server takes at most {limit} in one batch")
    contents: list[bytes] = []
    names: list[str] = []
    local: list[tuple[str, str]] = []  # refused here: (file, reason)
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return usage_error(f"cannot read {path}: {exc.strerror or exc}")
        reason = refusal(Upload(path.name, len(data)), info)
        if reason is not None:
            local.append((path.name, reason))
        else:
            contents.append(data)
            names.append(path.name)
    total_limit = info.get("batch_max_bytes")
    if total_limit is not None and sum(map(len, contents)) > total_limit:
        return usage_error(
            f"the files have {sum(map(len, contents)):,} bytes in all; the server takes at most "
            f"{total_limit:,} bytes in one batch"
        )
    for _, reason in local:
        ctx.err.print(Text.assemble(("skipped: ", "bold yellow"), reason), soft_wrap=True)
    if not contents:
        return usage_error("none of the files is one the server accepts")

    try:
        batch = ctx.client.submit_batch(model, files=contents, filenames=names)
    except ApiError as exc:
        if exc.code == "batch_refused" and not ctx.as_json:
            items = exc.details.get("items", []) if isinstance(exc.details, dict) else []
            for item in items:
                error = item.get("error") or {}
                ctx.err.print(Text(f"{item.get('image')}: {error.get('code')}: {error.get('message')}", style="red"))
        raise
    if not ctx.as_json:
        ctx.err.print(Text(f"submitted batch {batch['id']} ({batch['accepted']} jobs)", style="dim"), soft_wrap=True)
    batch, finished = _follow(ctx, batch, timeout)
    if ctx.as_json:
        ctx.emit(batch)
    else:
        ctx.out.print(summary_table(batch, local))
    if not finished:
        ctx.err.print(
            Text.assemble(("timeout: ", "bold yellow"), f"batch {batch['id']} is not done after {timeout:g} s"),
            soft_wrap=True,
        )
        return EXIT_TIMEOUT
    succeeded = batch["counts"].get("succeeded", 0)
    return EXIT_OK if succeeded == batch["total"] and not local else EXIT_JOB_FAILED


def _follow(ctx: Context, batch: Batch, timeout: float) -> tuple[Batch, bool]:
    """Poll the batch until done or ``timeout``; a progress bar on stderr when it is a terminal."""
    deadline = time.monotonic() + timeout
    progress: Progress | None = None
    task = None
    if ctx.err.is_terminal:
        progress = Progress(
            TextColumn("batch {task.fields[short]}…"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=ctx.err,
            transient=True,
        )
        task = progress.add_task("batch", total=batch["total"], short=batch["id"][:8], counts="")
        progress.start()
    try:
        while True:
            if progress is not None and task is not None:
                done = sum(1 for item in batch["items"] if item["status"] in FINISHED_ITEM)
                counts = " ".join(f"{n} {status}" for status, n in batch["counts"].items() if n)
                progress.update(task, completed=done, counts=counts)
            if batch["status"] == "done":
                return batch, True
            if time.monotonic() >= deadline:
                return batch, False
            time.sleep(POLL_S)
            batch = ctx.client.get_batch(batch)
    finally:
        if progress is not None:
            progress.stop()
