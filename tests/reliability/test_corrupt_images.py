"""Images with corrupt metadata through both decode paths: the worker's (open, draft, EXIF
transpose, convert, resize: ``classifier_worker.preprocess.decode``) and the gateway's check of
an upload (``classifier_common.images.inspect``: open, header checks, a decode when small).
Whatever Pillow raises on them, the worker's answer is a decoded image or :class:`ImageRejected`
(the job fails as ``invalid_image``), never another exception that would escape into the
worker's batch; the gateway's is accepted, :class:`ImageRejected` (422) or :class:`NotAnImage`
(415), never another exception (a 500, or a batch of uploads refused as a whole).

The generated cases are in tests/utils/corrupt_images.py (badly typed EXIF tags in JPEG, PNG,
WebP and TIFF; corrupt ICC profiles; TIFF strip offsets stored as fractions). A seeded fuzz loop
mutates the header and metadata bytes of metadata-rich images of six formats; it found the EXIF
cases' three exception classes (``TypeError``, ``struct.error``, ``AttributeError`` while
``exif_transpose`` writes the EXIF back) and the strip offsets' ``TypeError`` at the gateway.
``FUZZ_CASES`` mutations per seed image keep it to a few seconds; the classes it meets are
printed with the figures.
"""

from __future__ import annotations

import collections
import random
import warnings

import pytest

from classifier_common.catalog import get_spec
from classifier_common.errors import ImageRejected, NotAnImage
from classifier_common.images import inspect
from classifier_worker.preprocess import decode
from tests.reliability.accounting import report
from tests.utils.corrupt_images import corrupt_metadata_images, fuzz_seeds, mutate

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


def _checked(data: bytes) -> str:
    """The gateway's verdict on an upload: `accepted`, `rejected` (422) or `not an image` (415)."""
    try:
        inspect(data)
    except ImageRejected:
        return "rejected"
    except NotAnImage:
        return "not an image"
    return "accepted"


@pytest.mark.parametrize("name", sorted(corrupt_metadata_images()))
def test_generated_corrupt_metadata_is_decoded_or_rejected(name: str) -> None:
    _outcome(corrupt_metadata_images()[name])


@pytest.mark.parametrize("name", sorted(corrupt_metadata_images()))
def test_generated_corrupt_metadata_is_accepted_or_refused_by_the_gateway(name: str) -> None:
    _checked(corrupt_metadata_images()[name])


def test_fuzzed_metadata_is_decoded_or_rejected() -> None:
    rng = random.Random(SEED)
    seen: collections.Counter[str] = collections.Counter()
    checked: collections.Counter[str] = collections.Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every corrupt tag it skips
        for name, data in fuzz_seeds().items():
            assert _outcome(data) == "decoded" and _checked(data) == "accepted", name
            for _ in range(FUZZ_CASES):
                mutated = mutate(rng, data)
                seen[_outcome(mutated)] += 1
                checked[_checked(mutated)] += 1
    report(f"FUZZ images: {sum(seen.values())} mutated images, worker outcomes {dict(seen.most_common())}")
    report(f"  gateway checks {dict(checked.most_common())}")
    assert seen["decoded"] > 0 and len(seen) > 1
    assert checked["accepted"] > 0 and checked["rejected"] > 0
