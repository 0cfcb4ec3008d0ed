"""Every image format and mode a user may send decodes to the same picture: the goldfinch
stays a goldfinch as PNG, GIF, WebP, CMYK JPEG, 16-bit, greyscale or EXIF-rotated."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_common.catalog import get_spec
from classifier_common.errors import ImageRejected
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode
from tests.utils.corrupt_images import bad_exif_images, bad_icc_images

SPEC = get_spec("efficientnet_lite0")


@pytest.fixture(scope="module")
def lite0(seeded: tuple[Path, Path]) -> LoadedModel:
    return LoadedModel.load(SPEC, seeded[0])


@pytest.fixture(scope="module")
def goldfinch(seeded: tuple[Path, Path]) -> Image.Image:
    return Image.open(seeded[1] / "n01531178_goldfinch.JPEG").convert("RGB")


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def _variants(img: Image.Image) -> dict[str, bytes]:
    grey16 = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be rotated 90° clockwise to view
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # what a camera stores for orientation 6
    return {
        "png": _encode(img, "PNG"),
        "png-rgba": _encode(img.convert("RGBA"), "PNG"),
        "gif": _encode(img, "GIF"),
        "webp": _encode(img, "WEBP", quality=90),
        "jpeg-cmyk": _encode(img.convert("CMYK"), "JPEG", quality=95),
        "bmp": _encode(img, "BMP"),
        "tiff": _encode(img, "TIFF"),
        "png-16bit-grey": _encode(grey16, "PNG"),
        "jpeg-exif-rotated": _encode(rotated, "JPEG", quality=95, exif=exif.tobytes()),
    }


@pytest.mark.parametrize(
    "variant",
    ["png", "png-rgba", "gif", "webp", "jpeg-cmyk", "bmp", "tiff", "png-16bit-grey", "jpeg-exif-rotated"],
)
def test_formats_classify_as_goldfinch(variant: str, lite0: LoadedModel, goldfinch: Image.Image) -> None:
    data = _variants(goldfinch)[variant]
    image = decode(data, SPEC)
    assert image.size == (SPEC.input_size, SPEC.input_size) and image.mode == "RGB"
    top5 = lite0.predict([image])[0]
    labels = [p.label for p in top5]
    if variant == "png-16bit-grey":
        assert "goldfinch" in labels[:5]  # colour is gone; the bird must still be in the top 5
    else:
        assert labels[0] == "goldfinch", labels


def test_exif_orientation_is_applied(goldfinch: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(goldfinch.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes())
    upright = np.asarray(decode(_encode(goldfinch, "PNG"), SPEC), dtype=np.float32)
    restored = np.asarray(decode(data, SPEC), dtype=np.float32)
    assert np.abs(upright - restored).mean() < 3.0


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_undecodable_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(ImageRejected):
        decode(data, SPEC)


def test_truncated_jpeg_is_rejected(seeded: tuple[Path, Path]) -> None:
    data = (seeded[1] / "n01531178_goldfinch.JPEG").read_bytes()
    with pytest.raises(ImageRejected):
        decode(data[: len(data) // 3], SPEC)


# Broken metadata over good pixels (tests/utils/corrupt_images.py). Pillow raises TypeError,
# struct.error or AttributeError on the badly typed EXIF tags: whatever it raises, the image is
# rejected, never an exception that escapes into the worker's batch.
BAD_EXIF = bad_exif_images()
BAD_ICC = bad_icc_images()


@pytest.mark.parametrize("name", sorted(BAD_EXIF))
def test_badly_typed_exif_is_rejected_or_decoded(name: str) -> None:
    data = BAD_EXIF[name]
    if name.startswith("tiff-"):  # TIFF's own tags: Pillow copes
        assert decode(data, SPEC).size == (SPEC.input_size, SPEC.input_size)
        return
    with pytest.raises(ImageRejected, match="could not be decoded"):
        decode(data, SPEC)


@pytest.mark.parametrize("name", sorted(BAD_ICC))
def test_a_corrupt_icc_profile_is_ignored(name: str) -> None:
    image = decode(BAD_ICC[name], SPEC)
    assert image.size == (SPEC.input_size, SPEC.input_size) and image.mode == "RGB"


def test_a_valid_image_over_the_pixel_limit_is_rejected_undecoded() -> None:
    """Pillow refuses an image only at twice its MAX_IMAGE_PIXELS (a warning between): a whole,
    valid image of 1.2x the limit must be refused from its size, not decoded."""
    from bench.decode_bombs import zero_png
    from classifier_common.images import MAX_PIXELS

    side = int((MAX_PIXELS * 1.2) ** 0.5)
    data = zero_png(side, side, 0, 8)  # greyscale zeros: 48 MB once decoded, 50 KB here
    with pytest.raises(ImageRejected, match="pixels"):
        decode(data, SPEC)
