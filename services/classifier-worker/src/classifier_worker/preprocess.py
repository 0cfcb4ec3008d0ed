"""Image bytes -> the float batch a model expects (a numpy array, whatever runs the model). Each
model's sizes and normalisation come from its catalog entry; this module only knows how to apply
them."""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image, ImageOps

from classifier_common.catalog import ModelSpec
from classifier_common.errors import ImageRejected
from classifier_common.images import DECODE_SLOTS, MAX_PIXELS

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# A decode can take ~15 bytes a pixel (~600 MB at MAX_PIXELS): at most this many at once in a
# process, whatever its number of consumer threads (bench/decode_bombs.py).
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or float greyscale: scale to 8 bits by the image's own range.
        arr = np.asarray(img, dtype=np.float32)
        low, high = float(arr.min()), float(arr.max())
        scaled = (arr - low) * (255.0 / (high - low)) if high > low else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def decode(data: bytes, spec: ModelSpec) -> Image.Image:
    """Decode, upright (EXIF orientation), RGB, resized so the shorter side is resize_size and
    centre-cropped to input_size: the ImageNet evaluation transform.

    Any exception on the way is the image's fault (Pillow's plugins raise TypeError, struct.error,
    IndexError, ZeroDivisionError... on malformed EXIF, ICC or tiles, and decode lazily, so the
    resize may be the first to meet broken pixel data): it becomes :class:`ImageRejected`."""
    with _decode_slots:
        return _decode(data, spec)


def _decode(data: bytes, spec: ModelSpec) -> Image.Image:
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:  # Pillow itself only refuses twice its limit
            raise Image.DecompressionBombError(f"image is {img.width}x{img.height}, more than {MAX_PIXELS} pixels")
        # JPEG draft: let libjpeg decode at a reduced scale (>= the size we need), much cheaper
        # than decoding full size and shrinking. A no-op for other formats.
        img.draft("RGB", (spec.resize_size, spec.resize_size))
        ImageOps.exif_transpose(img, in_place=True)  # upright; no copy of a photo that already is
        img = _to_rgb(img)
        # Only the centre crop's region of the source is resized (Image.resize's box): the same
        # pixels as resizing the whole image and cropping, without resizing what the crop discards
        # (measured 2.8 -> 2.3 ms per gallery photo, same top-1; docs/performance.md).
        width, height = img.size
        side = min(width, height) * spec.input_size / spec.resize_size  # the crop, in source pixels
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
        return img.resize((spec.input_size, spec.input_size), Image.Resampling.BILINEAR, box=box)
    except Exception as exc:
        raise ImageRejected(f"the image could not be decoded: {type(exc).__name__}: {exc}") from None


class Normalizer:
    """uint8 HWC images -> normalised float32 NCHW batch, in numpy.

    The batch is the (N, H, W, C) stack seen as (N, C, H, W) (a transposed view, no copy of the
    layout): the same values and memory layout as torch's ``from_numpy(...).permute(0, 3, 1,
    2).float()`` gave, so the torch runtimes (which take it with ``torch.from_numpy``) compute
    exactly what they computed on the torch-built batch. Subtract and multiply are IEEE float32
    operations in both libraries: the values are bit for bit the same."""

    def __init__(self, spec: ModelSpec):
        self.mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.inv_std = np.float32(1.0) / np.asarray(spec.std, dtype=np.float32).reshape(1, 3, 1, 1)

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])  # N,H,W,C
        batch = arrays.transpose(0, 3, 1, 2).astype(np.float32)  # keeps the N,H,W,C layout
        # In place: no temporary batches (0.66 -> 0.57 ms a photo, the same values and layout).
        np.subtract(batch, self.mean, out=batch)
        np.multiply(batch, self.inv_std, out=batch)
        return batch
