"""The ``classifier`` command: the Python client (:class:`classifier_client.Client`) for people
(tables, a progress spinner) and for scripts (``--json``, exit codes).

It only speaks HTTP, so it works against ``make run``, ``make stack`` or a cluster's ingress alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.bar import Bar
from rich.console import Console
from rich.table import Table
from rich.text import Text

from classifier_client._calls import DEFAULT_MODEL, DEFAULT_URL
from classifier_client.client import Client
from classifier_client.errors import ApiError, ClassifierError, Unreachable, WaitTimeout
from classifier_client.types import FINISHED, Image, Job, Model, Prediction

LONG_POLL_S = 5.0  # the server holds each status request up to this long (its maximum is 30)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_API_ERROR = 3
EXIT_SERVER_ERROR = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

EPILOG = f"""\
exit codes:
  {EXIT_OK}  success (with --wait: the job succeeded)
  {EXIT_JOB_FAILED}  the job failed or was canceled
  {EXIT_USAGE}  bad arguments, or the file to upload cannot be read
  {EXIT_API_ERROR}  the API refused the request (4xx: unknown model or image or job, not an image,
     too large, queue full)
  {EXIT_SERVER_ERROR}  the server failed (5xx, e.g. 503 broker unavailable) or could not be reached
  {EXIT_TIMEOUT}  --wait gave up after --timeout seconds (the job goes on; ask again with `status`)
  {EXIT_INTERRUPTED}  interrupted with Ctrl-C

examples:
  classifier models
  classifier submit --image n01531178_goldfinch.JPEG --wait
  classifier submit --model efficientnet_lite2 --file photo.jpg --wait --json | jq .result
  classifier status 6d7ea9fff1394c918187b0bd2f9534a6 --wait

The server is --url, or CLASSIFIER_URL, or {DEFAULT_URL}."""


# ---- showing things


def label_of(image_name: str) -> str:
    """'n01531178_goldfinch.JPEG' -> 'goldfinch': gallery names start with the ImageNet synset id."""
    stem = image_name.rsplit(".", 1)[0]
    return re.sub(r"^n\d{8}_", "", stem).replace("_", " ")


def models_table(models: list[Model]) -> Table:
    table = Table(title="Models", title_justify="left")
    table.add_column("name", no_wrap=True)  # never cut: it is what --model takes
    for column in ("input", "classes", "weights", "loaded"):
        table.add_column(column, justify="right" if column in ("input", "classes") else "left")
    for m in models:
        table.add_row(
            Text(m["name"], style="bold" if m["available"] else "dim"),
            f"{m['input_size']}px",
            str(m["num_classes"]),
            Text("installed", style="green") if m["available"] else Text("missing", style="dim"),
            Text("yes", style="green") if m["loaded"] else Text("no", style="yellow" if m["available"] else "dim"),
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


def describe_job(console: Console, job: Job, base_url: str) -> None:
    image = label_of(job["image"]) if job.get("source") == "gallery" else job["image"]
    status_style = {"succeeded": "green", "failed": "red", "canceled": "red"}.get(job["status"], "yellow")
    line = Text.assemble((image, "bold"), " · ", job["model"], " · ", (job["status"], f"bold {status_style}"))
    result = job.get("result")
    if result and result.get("inference_ms") is not None:
        line.append(f" · inference {result['inference_ms']:.0f} ms", style="dim")
    if result and result.get("cached"):
        line.append(" · cached", style="dim")
    console.print(line)
    console.print(Text(f"job {job['id']}  {base_url.rstrip('/')}{job['status_url']}", style="dim"), soft_wrap=True)
    error = job.get("error")
    if error:
        console.print(Text(f"{error['code']}: {error['message']}", style="red"))
    if result and result.get("predictions"):
        console.print(predictions_table(result["predictions"]))


def exit_code(exc: ClassifierError) -> int:
    return EXIT_API_ERROR if isinstance(exc, ApiError) and 400 <= exc.status < 500 else EXIT_SERVER_ERROR


def error_text(exc: ClassifierError) -> str:
    if not isinstance(exc, ApiError):
        return f"{exc}: is the server running? Point --url or CLASSIFIER_URL at it."
    text = f"{exc.message} (HTTP {exc.status} {exc.code})"
    details = exc.details if isinstance(exc.details, dict) else {}
    if "accepted" in details:
        text += f"; accepted: {', '.join(map(str, details['accepted']))}"
    if "max_bytes" in details:
        text += f"; the limit is {details['max_bytes']:,} bytes"
    if exc.retry_after is not None:
        text += f"; retry after {exc.retry_after:g} s"
    return text


class _Progress:
    """The spinner's text; rich re-renders it on every refresh, so the clock keeps moving."""

    def __init__(self, job: Job):
        self.job = job
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.started
        return Text.assemble(f"job {self.job['id'][:8]}… ", (self.job["status"], "bold yellow"), f" · {elapsed:.1f} s")


# ---- commands


@dataclass
class Context:
    client: Client
    out: Console  # results: stdout
    err: Console  # progress and errors: stderr, so stdout stays clean for --json
    as_json: bool

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
    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            message = Text.assemble(("error: ", "bold red"), f"cannot read {args.file}: {exc.strerror or exc}")
            ctx.err.print(message, soft_wrap=True)
            return EXIT_USAGE
        job = ctx.client.submit(args.model, file=data, filename=args.file.name)
    else:
        job = ctx.client.submit(args.model, image=args.image)
    if not ctx.as_json:
        ctx.err.print(Text(f"submitted job {job['id']}", style="dim"), soft_wrap=True)
    return finish(ctx, job, args.wait, args.timeout)


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    return finish(ctx, ctx.client.get(args.job_id), args.wait, args.timeout)  # the id, or its status URL


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
    source.add_argument("--file", "-f", type=Path, help="an image file to upload")
    p.add_argument("--wait", "-w", action="store_true", help="wait for the result, showing progress")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: 60)")
    p.set_defaults(run=cmd_submit)

    p = commands.add_parser("status", parents=[common], help="show a job", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("job_id", metavar="ID", help="the job id that submit printed, or its status URL")
    p.add_argument("--wait", "-w", action="store_true", help="wait until the job finishes, showing progress")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits (default: 60)")
    p.set_defaults(run=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Context(
        client=Client(args.url, api_key=args.api_key, user_agent="classifier-cli"),
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
                f"job {exc.job['id']} is still {exc.job['status']} after {args.timeout:g} s; "
                f"ask again with: classifier status {exc.job['id']} --wait",
            )
        )
        return EXIT_TIMEOUT
    except (ApiError, Unreachable) as exc:
        if ctx.as_json and isinstance(exc, ApiError) and exc.body is not None:
            ctx.emit(exc.body)
        ctx.err.print(Text.assemble(("error: ", "bold red"), error_text(exc)), soft_wrap=True)
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
