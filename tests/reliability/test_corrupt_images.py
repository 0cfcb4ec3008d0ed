"""Images with corrupt metadata through the worker's decode path (open, draft, EXIF transpose,
convert, resize: ``classifier_worker.preprocess.decode``): whatever Pillow raises on them, the
answer is a decoded image or :class:`ImageRejected` (the job fails as ``invalid_image``), never
another exception that would escape into the worker's batch.

The generated cases are in tests/utils/corrupt_images.py (badly typed EXIF tags in JPEG, PNG,
WebP and TIFF; corrupt ICC profiles). A seeded fuzz loop mutates the header and metadata bytes
of metadata-rich images of six formats; it found the EXIF cases' three exception classes
(``TypeError``, ``struct.error``, ``AttributeError`` while ``exif_transpose`` writes the EXIF
back). ``FUZZ_CASES`` mutations per seed image keep it to a few seconds; the classes it meets are
printed with the figures.
"""

from __future__ import annotations

import collections
import random
import warnings

import pytest

from classifier_common.catalog import get_spec
from classifier_common.errors import ImageRejected
from classifier_worker.preprocess import decode
from tests.reliability.accounting import report
from tests.utils.corrupt_images import bad_exif_images, bad_icc_images, fuzz_seeds, mutate

SPEC = get_spec("efficientnet_lite0")
SEED = 20261205
FUZZ_CASES = 400  # per seed image


def _outcome(data: bytes) -> str:
    """`decoded`, or the exception class named in the rejection."""
    try:
        image = decode(data, SPEC)
    except ImageRejected as exc:
        return exc.message.removeprefix("the image could not be decoded: ").split(":")[0]
    assert image.size == (SPEC.input_size, SPEC.input_size) and image.mode == "RGB"
    return "decoded"


@pytest.mark.parametrize("name", sorted({**bad_exif_images(), **bad_icc_images()}))
def test_generated_corrupt_metadata_is_decoded_or_rejected(name: str) -> None:
    _outcome({**bad_exif_images(), **bad_icc_images()}[name])


def test_fuzzed_metadata_is_decoded_or_rejected() -> None:
    rng = random.Random(SEED)
    seen: collections.Counter[str] = collections.Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every corrupt tag it skips
        for name, data in fuzz_seeds().items():
            assert _outcome(data) == "decoded", name
            for _ in range(FUZZ_CASES):
                seen[_outcome(mutate(rng, data))] += 1
    report(f"FUZZ images: {sum(seen.values())} mutated images, outcomes {dict(seen.most_common())}")
    assert seen["decoded"] > 0 and len(seen) > 1
