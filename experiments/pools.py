"""The worker pools of a scaling experiment: the load each pool gets and how its workers run.

A pool is written ``NAME=PROFILE[:KEY=VALUE,...]`` (``python -m experiments run --pool``), e.g.
``lite=step:high=4`` or ``big=steady:rate=0.4,service_ms=1500``. Each KEY is a parameter of the
profile (:mod:`experiments.profiles`, unscaled seconds and rates per second) except
``service_ms``, the service time of that pool's workers. Every pool serves a synthetic model of
its own, ``synthetic_sleep_<pool>`` (a model belongs to one pool only), so the gateway routes each
pool's jobs to that pool's queue, and each pool's workers sleep their own service time per job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from classifier_common.catalog import SYNTHETIC_MODEL
from experiments.profiles import PROFILES, LoadProfile, by_name

DEFAULT_SERVICE_MS = 800
_POOL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$")  # a DNS label of at most 30 characters


def synthetic_model(pool: str) -> str:
    """The synthetic model a pool of an experiment serves."""
    return f"{SYNTHETIC_MODEL}_{pool}"


@dataclass(frozen=True)
class PoolLoad:
    name: str
    profile: str
    params: dict[str, float] = field(default_factory=dict)  # unscaled, as profiles.py takes them
    service_ms: int = DEFAULT_SERVICE_MS

    def __post_init__(self) -> None:
        if not _POOL_NAME.match(self.name):
            raise ValueError(f"pool name {self.name!r}: lowercase letters, digits and '-', at most 30 characters")
        if self.service_ms < 1:
            raise ValueError(f"pool {self.name!r}: service_ms must be >= 1")
        self.load_profile(1.0)  # an unknown profile or parameter fails here, not mid-run

    @property
    def model(self) -> str:
        return synthetic_model(self.name)

    def load_profile(self, time_scale: float) -> LoadProfile:
        try:
            profile = by_name(self.profile, **self.params)
        except TypeError as exc:  # an unknown keyword of the profile's factory
            raise ValueError(f"pool {self.name!r}: profile {self.profile!r} takes no such parameter ({exc})") from None
        return profile.time_scaled(time_scale)

    @property
    def spec(self) -> str:
        """The ``--pool`` text that gives this pool back."""
        keys = [f"{k}={v:g}" for k, v in self.params.items()]
        if self.service_ms != DEFAULT_SERVICE_MS:
            keys.append(f"service_ms={self.service_ms}")
        return f"{self.name}={self.profile}" + (":" + ",".join(keys) if keys else "")


def parse_pool(text: str) -> PoolLoad:
    """``NAME=PROFILE[:KEY=VALUE,...]`` -> :class:`PoolLoad`; ValueError saying what is wrong."""
    name, sep, rest = text.strip().partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"{text!r}: expected NAME=PROFILE[:KEY=VALUE,...], e.g. lite=step:high=4")
    profile, _, options = rest.partition(":")
    if profile not in PROFILES:
        raise ValueError(f"{text!r}: unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    params: dict[str, float] = {}
    service_ms = DEFAULT_SERVICE_MS
    for item in filter(None, (o.strip() for o in options.split(","))):
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or number != number:  # no '=' or not a number
            raise ValueError(f"{text!r}: {item!r} is not KEY=NUMBER")
        if key == "service_ms":
            service_ms = int(number)
        else:
            params[key] = number
    return PoolLoad(name=name, profile=profile, params=params, service_ms=service_ms)


def parse_pools(texts: Sequence[str]) -> list[PoolLoad]:
    pools = [parse_pool(t) for t in texts]
    names = [p.name for p in pools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"pool(s) named twice: {duplicates}")
    return pools


def pools_setting(pools: Sequence[PoolLoad]) -> str:
    """CLASSIFIER_POOLS for these pools, each serving its synthetic model."""
    return ";".join(f"{p.name}={p.model}" for p in pools)
