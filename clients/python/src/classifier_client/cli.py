"""The ``classifier`` command: the Python client (:class:`classifier_client.Client`) for people
(tables, a progress spinner) and for scripts (``--json``, exit codes).

It only speaks HTTP, so it works against ``make run``, ``make stack`` or a cluster's ingress alike.
"""

from __future__ import annotations

import argparse
import difflib
import json
import mimetypes
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.bar import Bar
from rich.console import Console
from rich.table import Table
from rich.text import Text

from classifier_client import cli_batch
from classifier_client._calls import DEFAULT_MODEL, DEFAULT_URL
from classifier_client.bodies import FINISHED, Image, Info, Job, Model, Prediction, QueuePosition, Stats
from classifier_client.client import Client
from classifier_client.errors import ApiError, ClassifierError, Unreachable, WaitTimeout

# The file name extensions of the image formats a server may accept (its /v1/info names the formats).
FORMAT_EXTENSIONS = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"),
    "PNG": ("png",),
    "GIF": ("gif",),
    "WEBP": ("webp",),
    "BMP": ("bmp", "dib"),
    "TIFF": ("tif", "tiff"),
}
# Error codes whose message is a library's words, and what they mean for a person.
PLAIN_WORDS = {
    "invalid_image": "{subject} looks like an image, but its data is damaged or cut off",
    "image_unreadable": "the server could not read {subject} from its storage",
}
LONG_POLL_S = 5.0  # the server holds each status request up to this long (its maximum is 30)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_API_ERROR = 3
EXIT_SERVER_ERROR = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130
MAX_PAGE = 200  # the server's largest page

EPILOG = f"""\
exit codes:
  {EXIT_OK}  success (with --wait: the job succeeded; several files: every one succeeded)
  {EXIT_JOB_FAILED}  the job failed or was canceled (several files: one of them failed or was refused)
  {EXIT_USAGE}  bad arguments, or the file to upload cannot be read or is one the server refuses
     (larger than its limit, or not an image format it accepts: see /v1/info)
  {EXIT_API_ERROR}  the API refused the request (4xx: unknown model or image or job, not an image,
     too large, queue full)
  {EXIT_SERVER_ERROR}  the server failed (5xx, e.g. 503 broker unavailable) or could not be reached
  {EXIT_TIMEOUT}  --wait gave up after --timeout seconds, as does following several files (the jobs go on;
     ask again with `status`)
  {EXIT_INTERRUPTED}  interrupted with Ctrl-C

examples:
  classifier models
  classifier submit --image n01531178_goldfinch.JPEG --wait
  classifier submit --model efficientnet_lite2 --file photo.jpg --wait --json | jq .result
  classifier submit --file photos/*.jpg
  classifier status 6d7ea9fff1394c918187b0bd2f9534a6 --wait
  classifier stats --window 600

The server is --url, or CLASSIFIER_URL, or {DEFAULT_URL}."""


# ---- showing things


def label_of(image_name: str) -> str:
    """'n01531178_goldfinch.JPEG' -> 'goldfinch': gallery names start with the ImageNet synset id."""
    stem = image_name.rsplit(".", 1)[0]
    return re.sub(r"^n\d{8}_", "", stem).replace("_", " ")


def _pool_cell(model: Model) -> Text:
    pool = model.get("pool")
    if pool is None:
        return Text("none", style="dim")  # a job for it is refused
    return Text(pool, style="green" if model.get("pool_ready") else "yellow")


def models_table(models: list[Model]) -> Table:
    """One row per model; the pool column when the server names the worker pool serving each."""
    pools = any("pool" in m for m in models)
    table = Table(title="Models", title_justify="left")
    table.add_column("name", no_wrap=True)  # never cut: it is what --model takes
    for column in ("input", "classes", "weights", "loaded", *(("pool",) if pools else ())):
        table.add_column(column, justify="right" if column in ("input", "classes") else "left")
    for m in models:
        table.add_row(
            Text(m["name"], style="bold" if m["available"] else "dim"),
            f"{m['input_size']}px",
            str(m["num_classes"]),
            Text("installed", style="green") if m["available"] else Text("missing", style="dim"),
            Text("yes", style="green") if m["loaded"] else Text("no", style="yellow" if m["available"] else "dim"),
            *((_pool_cell(m),) if pools else ()),
        )
    return table


def images_table(images: list[Image]) -> Table:
    table = Table(title=f"Gallery ({len(images)} images)", title_justify="left")
    table.add_column("name", no_wrap=True)  # never cut: it is what --image takes
    table.add_column("label")
    table.add_column("size", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    for image in images:
        table.add_row(
            image["name"], label_of(image["name"]), f"{image['width']}×{image['height']}", f"{image['bytes']:,}"
        )
    return table


def predictions_table(predictions: list[Prediction]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("", width=32)
    table.add_column("score", justify="right")
    for rank, p in enumerate(predictions, start=1):
        style = "bold green" if rank == 1 else ""
        table.add_row(
            str(rank),
            Text(p["label"], style=style),
            Bar(size=1.0, begin=0.0, end=p["score"], width=32, color="green" if rank == 1 else "cyan"),
            Text(f"{p['score'] * 100:.2f}%", style=style),
        )
    return table


def duration_words(seconds: float) -> str:
    """8.3 -> 'about 8 s', 150 -> 'about 3 min', 9000 -> 'about 2.5 h'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def queue_words(position: QueuePosition) -> str:
    """'12 jobs ahead · about 8 s': a queued job's place, as the page says it too."""
    ahead = position["ahead"]
    words = "next in line" if ahead == 0 else f"{ahead:,} job{'' if ahead == 1 else 's'} ahead"
    wait = position.get("estimated_wait_s")
    return words if wait is None else f"{words} · {duration_words(wait)}"


def where_it_stands(job: Job) -> str:
    """' (12 jobs ahead · about 8 s)' for a queued job whose place the server gave, else ''."""
    position = job.get("queue")
    return f" ({queue_words(position)})" if job["status"] == "queued" and position else ""


def _number(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def stats_table(stats: Stats) -> Table:
    """One column per pool (a few at most), one row per figure: fits a terminal of 80 columns."""
    window = stats["window_s"]
    span = f"{window // 60} min" if window % 60 == 0 else f"{window} s"
    table = Table(title=f"Pools (last {span})", title_justify="left")
    table.add_column("", style="dim", no_wrap=True)
    pools = stats["pools"]
    for pool in pools:
        table.add_column(Text(pool["pool"], style="bold"), justify="right")

    def unknown(value: object) -> str:
        return "?" if value is None else f"{value:,}"

    def alarm(value: int, bad: bool) -> Text:
        return Text(f"{value:,}", style="bold red" if bad else "")

    rows: list[tuple[str, list[str | Text]]] = [
        ("models", [", ".join(p["models"]) for p in pools]),
        ("queue", [p["queue"] for p in pools]),
        ("backlog", [f"{p['backlog']:,} ({p['queued']:,} queued, {p['running']:,} running)" for p in pools]),
        ("ready messages", [unknown(p["broker"] and p["broker"]["ready"]) for p in pools]),
        ("unacked messages", [unknown(p["broker"] and p["broker"]["unacked"]) for p in pools]),
        ("consumers", [unknown(p["broker"] and p["broker"]["consumers"]) for p in pools]),
        ("ready workers", [alarm(p["ready_workers"], p["ready_workers"] == 0 and p["backlog"] > 0) for p in pools]),
        ("jobs/s", [_number(p["jobs_per_s"]) for p in pools]),
        ("jobs/s while busy", [_number(p["busy_jobs_per_s"]) for p in pools]),
        ("latency p50", [_number(p["p50_latency_s"], " s") for p in pools]),
        ("latency p95", [_number(p["p95_latency_s"], " s") for p in pools]),
        ("finished", [f"{p['finished']:,}" for p in pools]),
        ("failed", [alarm(p["failed"], p["failed"] > 0) for p in pools]),
        ("dead-lettered", [alarm(p["dead_lettered"], p["dead_lettered"] > 0) for p in pools]),
        ("dead letters waiting", [unknown(p["broker"] and p["broker"]["dead_letters"]) for p in pools]),
    ]
    for name, cells in rows:
        table.add_row(name, *cells)
    return table


def describe_job(console: Console, job: Job, base_url: str) -> None:
    image = label_of(job["image"]) if job.get("source") == "gallery" else job["image"]
    status_style = {"succeeded": "green", "failed": "red", "canceled": "red"}.get(job["status"], "yellow")
    line = Text.assemble((image, "bold"), " · ", job["model"], " · ", (job["status"], f"bold {status_style}"))
    result = job.get("result")
    inference_ms = result.get("inference_ms") if result else None
    if result and result.get("cached"):
        original = f" (originally {inference_ms:.0f} ms)" if inference_ms is not None else ""
        line.append(f" · cached result{original}", style="dim")
    elif inference_ms is not None:
        line.append(f" · inference {inference_ms:.0f} ms", style="dim")
    position = job.get("queue")
    if job["status"] == "queued" and position:
        line.append(f" · {queue_words(position)}")
    console.print(line)
    console.print(Text(f"job {job['id']}  {base_url.rstrip('/')}{job['status_url']}", style="dim"), soft_wrap=True)
    error = job.get("error")
    if error and error["code"] in PLAIN_WORDS:
        words = PLAIN_WORDS[error["code"]].format(subject=job["image"])
        console.print(Text(f"{error['code']}: {words}; details: {error['message']}", style="red"))
    elif error:
        console.print(Text(f"{error['code']}: {error['message']}", style="red"))
    if result and result.get("predictions"):
        console.print(predictions_table(result["predictions"]))


def exit_code(exc: ClassifierError) -> int:
    return EXIT_API_ERROR if isinstance(exc, ApiError) and 400 <= exc.status < 500 else EXIT_SERVER_ERROR


def error_text(exc: ClassifierError, upload: Upload | None = None, hint: str | None = None) -> str:
    if not isinstance(exc, ApiError):
        return f"{exc}: is the server running? Point --url or CLASSIFIER_URL at it."
    details = exc.details if isinstance(exc.details, dict) else {}
    if exc.status == 413 and upload is not None and "max_bytes" in details:
        # the server's message names its limit only; the file's own size is what to act on
        text = f"{too_large(upload, details['max_bytes'])} (HTTP 413 {exc.code})"
    elif exc.code in PLAIN_WORDS:
        # the server's text (a decoder's words) follows as a detail
        subject = upload.name if upload is not None else "the image"
        text = f"{PLAIN_WORDS[exc.code].format(subject=subject)} (HTTP {exc.status} {exc.code}); details: {exc.message}"
    else:
        text = f"{exc.message} (HTTP {exc.status} {exc.code})"
        if "max_bytes" in details:
            text += f"; the limit is {details['max_bytes']:,} bytes"
    if "accepted" in details:
        text += f"; accepted: {', '.join(map(str, details['accepted']))}"
    if exc.retry_after is not None:
        text += f"; retry after {exc.retry_after:g} s"
    if hint:
        text += f"; {hint}"
    return text


@dataclass(frozen=True)
class Upload:
    name: str
    size: int


def too_large(upload: Upload, limit: int) -> str:
    return f"{upload.name} is {upload.size:,} bytes; the server accepts at most {limit:,} bytes"


def refusal(upload: Upload, info: Info) -> str | None:
    """Why the server would refuse this file, from the limits it publishes in /v1/info, or None."""
    limit = info.get("max_upload_bytes")
    if limit is not None and upload.size > limit:
        return too_large(upload, limit)
    formats = info.get("accepted_formats")
    media_type, _ = mimetypes.guess_type(upload.name)
    # a name that says nothing (no or unknown extension): the server reads the bytes
    if not formats or media_type is None:
        return None
    extension = upload.name.rsplit(".", 1)[-1].lower()
    accepted = {ext for fmt in formats for ext in FORMAT_EXTENSIONS.get(fmt, (fmt.lower(),))}
    if not media_type.startswith("image/") or extension not in accepted:
        return f"{upload.name} is not an image format the server accepts ({media_type}); accepted: {', '.join(formats)}"
    return None


def suggestion(ctx: Context, exc: ApiError, model: str, image: str | None) -> str | None:
    """For an unknown model or gallery image: what the server does serve, the closest first."""
    try:
        if exc.code == "unknown_image" and image is not None:
            names = [i["name"] for i in ctx.client.images()]
            # compared by label: the synset ids and extensions all look alike
            by_label = {label_of(name).lower(): name for name in names}
            matches = difflib.get_close_matches(label_of(image).lower(), by_label, n=3, cutoff=0.7)
            close = [by_label[m] for m in matches]
            if close:
                return f"did you mean {' or '.join(close)}? (`classifier images` lists them all)"
            return "`classifier images` lists the gallery"
        if exc.code in ("unknown_model", "model_not_served"):
            # A server with worker pools names the pool serving each model (None: no pool does).
            served = [m["name"] for m in ctx.client.models() if m["available"] and m.get("pool", "") is not None]
            close = difflib.get_close_matches(model, served, n=1, cutoff=0.5)
            text = f"models served here: {', '.join(served) or 'none'}"
            return f"did you mean {close[0]}? {text}" if close else text
    except ClassifierError:
        return None  # the hint is a courtesy: the error itself is what matters
    return None


class _Progress:
    """The spinner's text; rich re-renders it on every refresh, so the clock keeps moving."""

    def __init__(self, job: Job):
        self.job = job
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.started
        text = Text.assemble(f"job {self.job['id'][:8]}… ", (self.job["status"], "bold yellow"))
        position = self.job.get("queue")
        if self.job["status"] == "queued" and position:
            text.append(f" · {queue_words(position)}")
        text.append(f" · {elapsed:.1f} s")
        return text


# ---- commands


@dataclass
class Context:
    client: Client
    out: Console  # results: stdout
    err: Console  # progress and errors: stderr, so stdout stays clean for --json
    as_json: bool
    upload: Upload | None = None  # the file being submitted, for the error text
    hint: str | None = None  # what to try instead, for the error text

    def emit(self, value: Any) -> None:
        # plain json, not rich's: the output is for jq and scripts
        print(json.dumps(value, indent=2 if sys.stdout.isatty() else None), flush=True)


def finish(ctx: Context, job: Job, wait: bool, timeout: float) -> int:
    if wait and job["status"] not in FINISHED:
        progress = _Progress(job)

        def update(latest: Job) -> None:
            progress.job = latest

        with ctx.err.status(progress, spinner="dots"):
            job = ctx.client.wait(job, timeout, poll_s=LONG_POLL_S, on_update=update)
    if ctx.as_json:
        ctx.emit(job)
    else:
        describe_job(ctx.out, job, ctx.client.base_url)
        if job["status"] not in FINISHED:
            ctx.err.print(Text(f"follow it: classifier status {job['id']} --wait", style="dim"))
    return EXIT_JOB_FAILED if job["status"] in ("failed", "canceled") else EXIT_OK


def cmd_models(ctx: Context, args: argparse.Namespace) -> int:
    models = ctx.client.models()
    if ctx.as_json:
        ctx.emit(models)
    else:
        ctx.out.print(models_table(models))
    return EXIT_OK


def cmd_images(ctx: Context, args: argparse.Namespace) -> int:
    images = ctx.client.images()
    if ctx.as_json:
        ctx.emit(images)
    else:
        ctx.out.print(images_table(images))
    return EXIT_OK


def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    def usage_error(text: str) -> int:
        ctx.err.print(Text.assemble(("error: ", "bold red"), text), soft_wrap=True)
        return EXIT_USAGE

    if args.file is not None and len(args.file) > 1:
        return cli_batch.run(ctx, args.model, args.file, published_limits(ctx), args.timeout)
    try:
        if args.file is not None:
            (path,) = args.file
            try:
                data = path.read_bytes()
            except OSError as exc:
                return usage_error(f"cannot read {path}: {exc.strerror or exc}")
            ctx.upload = Upload(path.name, len(data))
            reason = refusal(ctx.upload, published_limits(ctx))
            if reason is not None:
                return usage_error(reason)  # refused before a byte is sent
            job = ctx.client.submit(args.model, file=data, filename=path.name)
        else:
            job = ctx.client.submit(args.model, image=args.image)
    except ApiError as exc:
        ctx.hint = suggestion(ctx, exc, args.model, args.image)
        raise
    if not ctx.as_json:
        ctx.err.print(Text(f"submitted job {job['id']}", style="dim"), soft_wrap=True)
    return finish(ctx, job, args.wait, args.timeout)


def published_limits(ctx: Context) -> Info:
    """/v1/info; empty from a server that does not publish it (it then checks the file alone)."""
    try:
        return ctx.client.info()
    except ApiError:
        return {}


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    return finish(ctx, ctx.client.get(args.job_id), args.wait, args.timeout)  # the id, or its status URL


def cmd_stats(ctx: Context, args: argparse.Namespace) -> int:
    stats = ctx.client.stats(args.window)
    if ctx.as_json:
        ctx.emit(stats)
        return EXIT_OK
    ctx.out.print(stats_table(stats))
    if stats["broker_error"]:
        ctx.err.print(Text(f"broker counts missing: {stats['broker_error']}", style="yellow"), soft_wrap=True)
    return EXIT_OK


def jobs_table(jobs: list[Job]) -> Table:
    """One job a row; a retry link shows the other job's id shortened (--json has it whole)."""
    table = Table(box=None, pad_edge=False)
    table.add_column("job", no_wrap=True)
    for column in ("status", "model", "image", "created (UTC)", "retry"):
        table.add_column(column)
    for job in jobs:
        image = label_of(job["image"]) if job.get("source") == "gallery" else job["image"]
        link = ""
        retried_by, retry_of = job.get("retried_by"), job.get("retry_of")
        if retried_by:
            link = f"retried by {retried_by[:8]}"
        elif retry_of:
            link = f"retry of {retry_of[:8]}"
        created = job["created_at"][:19].replace("T", " ")
        table.add_row(job["id"], job["status"], job["model"], image, created, link)
    return table


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    filters = {"status": args.status or None, "model": args.model, "page_size": min(args.limit, MAX_PAGE)}
    jobs: list[Job] = []
    for job in ctx.client.list_jobs(**filters):
        jobs.append(job)
        if len(jobs) >= args.limit:
            break
    if ctx.as_json:
        ctx.emit(jobs)
    elif not jobs:
        ctx.err.print(Text("no jobs", style="dim"))
    else:
        ctx.out.print(jobs_table(jobs))
    return EXIT_OK


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    job = ctx.client.cancel(args.job_id)
    if ctx.as_json:
        ctx.emit(job)
    else:
        describe_job(ctx.out, job, ctx.client.base_url)
    return EXIT_OK


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    job = ctx.client.retry_job(args.job_id)
    if not ctx.as_json:
        ctx.err.print(Text(f"job {job['retry_of']} retried as job {job['id']}", style="dim"), soft_wrap=True)
    return finish(ctx, job, args.wait, args.timeout)


def add_job_commands(commands: Any, common: argparse.ArgumentParser, formatter: Any) -> None:
    """list, cancel and retry."""
    p = commands.add_parser(
        "list", parents=[common], help="list your jobs, newest first", epilog=EPILOG, formatter_class=formatter
    )
    p.add_argument(
        "--status",
        "-s",
        action="append",
        choices=sorted({*FINISHED, "queued", "running"}),
        help="only jobs in this status (repeat it for several)",
    )
    p.add_argument("--model", "-m", help="only jobs of this model")
    p.add_argument("--limit", "-n", type=int, default=20, help="show at most this many jobs (default: 20)")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser(
        "cancel", parents=[common], help="cancel a queued job", epilog=EPILOG, formatter_class=formatter
    )
    p.add_argument("job_id", metavar="ID", help="the job id, or its status URL")
    p.set_defaults(run=cmd_cancel)

    p = commands.add_parser(
        "retry",
        parents=[common],
        help="queue a failed or canceled job again, as a new job",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    p.add_argument("job_id", metavar="ID", help="the failed or canceled job's id, or its status URL")
    p.add_argument("--wait", "-w", action="store_true", help="wait for the new job's result, showing progress")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: 60)")
    p.set_defaults(run=cmd_retry)


def build_parser() -> argparse.ArgumentParser:
    # The shared options are accepted before and after the command (`classifier --json models` and
    # `classifier models --json`): the subcommands' copies only set a value when it is given.
    def shared(parser: argparse.ArgumentParser, suppress: bool) -> None:
        def default(value: Any) -> Any:
            return argparse.SUPPRESS if suppress else value

        parser.add_argument(
            "--url",
            default=default(os.environ.get("CLASSIFIER_URL", DEFAULT_URL)),
            help=f"the API's base URL (default: $CLASSIFIER_URL or {DEFAULT_URL})",
        )
        parser.add_argument(
            "--api-key",
            default=default(os.environ.get("CLASSIFIER_API_KEY")),
            help="sent as X-API-Key when the server requires one (default: $CLASSIFIER_API_KEY)",
        )
        parser.add_argument(
            "--json", action="store_true", default=default(False), help="print the API's JSON, for scripts"
        )

    common = argparse.ArgumentParser(add_help=False)
    shared(common, suppress=True)
    formatter = argparse.RawDescriptionHelpFormatter

    parser = argparse.ArgumentParser(
        prog="classifier",
        description="Classify images with the asynchronous image classification service.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    shared(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("models", parents=[common], help="list the models and whether they are loaded")
    p.set_defaults(run=cmd_models)

    p = commands.add_parser("images", parents=[common], help="list the gallery images")
    p.set_defaults(run=cmd_images)

    p = commands.add_parser(
        "submit",
        parents=[common],
        help="submit a job (a gallery image or your file)",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    p.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", "-i", help="a gallery image name (see `classifier images`)")
    source.add_argument(
        "--file",
        "-f",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="image files to upload; several (a shell glob: --file photos/*.jpg) are sent as one batch, "
        "followed to the end with a progress bar and summed up in a table",
    )
    p.add_argument("--wait", "-w", action="store_true", help="wait for the result, showing progress")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: 60)")
    p.set_defaults(run=cmd_submit)

    p = commands.add_parser("status", parents=[common], help="show a job", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("job_id", metavar="ID", help="the job id that submit printed, or its status URL")
    p.add_argument("--wait", "-w", action="store_true", help="wait until the job finishes, showing progress")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: 60)")
    p.set_defaults(run=cmd_status)

    p = commands.add_parser(
        "stats",
        parents=[common],
        help="each pool of workers: backlog, consumers, ready workers, jobs/s, p95 latency, dead-lettered jobs",
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="SECONDS",
        help="the window of jobs/s, latency and the counts of finished jobs (60 to 3600; default: the server's, 300)",
    )
    p.set_defaults(run=cmd_stats)
    add_job_commands(commands, common, formatter)
    return parser


def base_url(url: str) -> str:
    """The API's base URL as people type it: `127.0.0.1:8000` is http://127.0.0.1:8000, and a
    trailing /v1 (the API's prefix, copied from a request) is dropped."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url {url!r} is not an http(s) URL such as http://127.0.0.1:8000")
    path = re.sub(r"/v1/?$", "", parts.path.rstrip("/"))
    return f"{parts.scheme}://{parts.netloc}{path}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        url = base_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2
    ctx = Context(
        client=Client(url, api_key=args.api_key, user_agent="classifier-cli"),
        out=Console(),
        err=Console(stderr=True),
        as_json=args.json,
    )
    try:
        return args.run(ctx, args)
    except WaitTimeout as exc:
        if ctx.as_json:
            ctx.emit(exc.job)
        ctx.err.print(
            Text.assemble(
                ("timeout: ", "bold yellow"),
                f"job {exc.job['id']} is still {exc.job['status']}{where_it_stands(exc.job)} after {args.timeout:g} s; "
                f"ask again with: classifier status {exc.job['id']} --wait",
            )
        )
        return EXIT_TIMEOUT
    except (ApiError, Unreachable) as exc:
        if ctx.as_json and isinstance(exc, ApiError) and exc.body is not None:
            ctx.emit(exc.body)
        text = error_text(exc, ctx.upload, ctx.hint)
        ctx.err.print(Text.assemble(("error: ", "bold red"), text), soft_wrap=True)
        return exit_code(exc)
    except KeyboardInterrupt:
        ctx.err.print("interrupted (a submitted job goes on; `classifier status ID` shows it)")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`| head`): say nothing more, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
