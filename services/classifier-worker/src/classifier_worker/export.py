"""The ONNX export of a loaded model, made once from the same checkpoint and verified by sha256
before every use.

An export is named after the model and its version (which carries the weights' digest), so new
weights never meet an old export. Beside it, ``<file>.sha256`` records the export's own digest,
written after the export is complete; a file that does not match it (tampered, cut off by a crash)
is refused and made again. The seed step exports into ``<models dir>/exports``; a worker, which
mounts the models read-only on Kubernetes, makes any missing or refused export in its own cache
directory.

Whether the export computes what torch computes is checked on the gallery: by a worker with torch
before it uses the export (:mod:`classifier_worker.selection`), and by the seed step, which
records the outcome beside the export as ``<file>.check.json`` (:func:`record_agreement`), bound
to the export's sha256. A worker without torch cannot run the check itself: it serves a seeded
export only with a passing record (:mod:`classifier_worker.onnx_only`). Only :func:`export`
needs torch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from classifier_common.catalog import ModelSpec
from classifier_worker.models import file_sha256
from classifier_worker.running import RUNNING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EXPORTS_DIR = "exports"
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
CHECK_SUFFIX = ".check.json"


class ExportRefused(Exception):
    """An export's file does not match its recorded sha256."""


def export_name(spec: ModelSpec, version: str) -> str:
    return f"{spec.name}-{version}.onnx"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "classifier-exports"


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def agreement_path(path: Path) -> Path:
    return path.with_name(path.name + CHECK_SUFFIX)


def verify(path: Path) -> str:
    """The export's sha256. Raises ExportRefused unless ``path`` exists and matches the digest
    recorded beside it."""
    digest_file = _digest_path(path)
    if not path.is_file() or not digest_file.is_file():
        raise ExportRefused(f"{path} or its digest is missing")
    recorded = (digest_file.read_text().split() or [""])[0]
    actual = file_sha256(path)
    if actual != recorded:
        raise ExportRefused(f"{path} has sha256 {actual[:12]}, its record says {recorded[:12] or 'nothing'}")
    return actual


@dataclass(frozen=True)
class Agreement:
    """The outcome of checking an export against fp32 torch on the gallery photos (top-1 of each
    at batch 1), as recorded beside the export."""

    export_sha256: str  # the export checked: a record of another file does not count
    photos: int
    agreeing: int  # photos whose top-1 class is fp32 torch's
    max_disagreements: int  # the rule it was checked under
    refused: str | None  # why the export may not be used; None: it passed
    checked_at: str
    torch: str
    onnxruntime: str

    @property
    def disagreeing(self) -> int:
        return self.photos - self.agreeing


def record_agreement(path: Path, photos: int, agreeing: int, max_disagreements: int, refused: str | None) -> Agreement:
    """Write the check's outcome for the export at ``path`` beside it (atomically) and return it."""
    record = Agreement(
        export_sha256=verify(path),
        photos=photos,
        agreeing=agreeing,
        max_disagreements=max_disagreements,
        refused=refused,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        torch=_torch_version(),
        onnxruntime=_version("onnxruntime"),
    )
    target = agreement_path(path)
    part = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    part.write_text(json.dumps(asdict(record), indent=2) + "\n")
    part.replace(target)
    return record


def read_agreement(path: Path, export_sha256: str) -> Agreement:
    """The recorded check of the export whose sha256 is ``export_sha256``. Raises ExportRefused
    when there is none (missing, unreadable, or made for another file)."""
    target = agreement_path(path)
    try:
        record = Agreement(**json.loads(target.read_text()))
    except FileNotFoundError:
        raise ExportRefused(f"{target} is missing: the export's check against torch was never recorded") from None
    except (ValueError, TypeError) as exc:
        raise ExportRefused(f"{target} is not a check record: {exc}") from None
    if record.export_sha256 != export_sha256:
        raise ExportRefused(
            f"{target} records the check of another file (sha256 {record.export_sha256[:12]}, "
            f"the export is {export_sha256[:12]})"
        )
    return record


def _torch_version() -> str:
    """The build that checked (2.14.1+cpu), where torch is loaded."""
    torch = sys.modules.get("torch")
    return str(torch.__version__) if torch is not None else _version("torch")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def export(module: torch.nn.Module, spec: ModelSpec, path: Path) -> Path:
    """Export ``module`` (batch axis dynamic) to ``path`` and record its digest; returns ``path``."""
    import torch

    started = time.perf_counter()
    part = part_path(path)
    example = torch.zeros(1, 3, spec.input_size, spec.input_size)
    # Tracing patches torch.nn.Module for the whole process (optimize.py). The TorchScript-based
    # exporter is the one that takes the fx-rewritten module as it is; its deprecation notice and
    # constant-folding remarks are not news to an operator.
    with RUNNING.exclusive(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        torch.onnx.export(
            module,
            (example,),
            str(part),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    publish(part, path)
    log.info("model exported to ONNX", extra={"model": spec.name, "path": str(path), "export_s": _since(started)})
    return path


def part_path(path: Path) -> Path:
    """A name of this call's own to write ``path`` under before :func:`publish`: workers starting
    side by side may make the same file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")


def publish(part: Path, path: Path) -> None:
    """Record the digest of the complete file ``part`` and move it to ``path``."""
    digest_part = part.with_name(part.name + ".sha256")
    digest_part.write_text(f"{file_sha256(part)}  {path.name}\n")
    # The digest first: a reader between the two renames sees a mismatch and makes its own file,
    # never an unverified file taken for verified.
    digest_part.replace(_digest_path(path))
    part.replace(path)


def ensure_export(module: torch.nn.Module, spec: ModelSpec, version: str, models_dir: Path, cache_dir: Path) -> Path:
    """A verified export of the model: the seeded one, else one in ``cache_dir`` (made if needed)."""
    name = export_name(spec, version)
    for candidate in (models_dir / EXPORTS_DIR / name, cache_dir / name):
        try:
            verify(candidate)
            return candidate
        except ExportRefused as exc:
            if candidate.exists():
                log.warning("ONNX export refused: %s", exc, extra={"model": spec.name})
    return export(module, spec, cache_dir / name)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
