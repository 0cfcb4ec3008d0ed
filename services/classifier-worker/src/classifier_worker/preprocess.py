"""Image bytes -> the tensor a model expects. Each model's sizes and normalisation come from its
catalog entry; this module only knows how to apply them."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps

from classifier_common.catalog import ModelSpec
from classifier_common.errors import ImageRejected
from classifier_common.images import MAX_PIXELS

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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
    centre-cropped to input_size."""
    try:
        img = Image.open(io.BytesIO(data))
        # JPEG draft: let libjpeg decode at a reduced scale (>= the size we need), much cheaper
        # than decoding full size and shrinking. A no-op for other formats.
        img.draft("RGB", (spec.resize_size, spec.resize_size))
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"the image could not be decoded: {exc}") from None
    width, height = img.size
    scale = spec.resize_size / min(width, height)
    size = (max(spec.resize_size, round(width * scale)), max(spec.resize_size, round(height * scale)))
    img = img.resize(size, Image.BILINEAR)
    left = (size[0] - spec.input_size) // 2
    top = (size[1] - spec.input_size) // 2
    return img.crop((left, top, left + spec.input_size, top + spec.input_size))


class Normalizer:
    """uint8 HWC images -> normalised float NCHW batch."""

    def __init__(self, spec: ModelSpec):
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])  # N,H,W,C
        batch = torch.from_numpy(arrays).permute(0, 3, 1, 2).float()
        return (batch - self.mean) * self.inv_std
