"""The pools of a scaling experiment as the command line gives them: parsing, refusals, the
CLASSIFIER_POOLS they make."""

from __future__ import annotations

import pytest

from experiments.pools import DEFAULT_SERVICE_MS, PoolLoad, parse_pool, parse_pools, pools_setting, synthetic_model


def test_a_pool_with_profile_parameters_and_its_own_service_time() -> None:
    pool = parse_pool("big=steady:rate=0.4,duration_s=300,service_ms=1500")
    assert pool == PoolLoad("big", "steady", {"rate": 0.4, "duration_s": 300}, 1500)
    assert pool.model == "synthetic_sleep_big" == synthetic_model("big")
    profile = pool.load_profile(0.2)
    assert profile.duration_s == pytest.approx(60)
    assert profile.rate(30) == 0.4
    assert parse_pool(pool.spec) == pool  # the report's command line gives the same pool back


def test_a_pool_with_the_profile_defaults() -> None:
    pool = parse_pool("lite=step")
    assert (pool.params, pool.service_ms) == ({}, DEFAULT_SERVICE_MS)
    assert pool.spec == "lite=step"
    assert pool.load_profile(1.0).rate(100) == 4.0  # step's default high rate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lite", "expected NAME=PROFILE"),
        ("=step", "expected NAME=PROFILE"),
        ("lite=", "expected NAME=PROFILE"),
        ("lite=sine", "unknown profile 'sine'"),
        ("lite=step:high", "'high' is not KEY=NUMBER"),
        ("lite=step:high=lots", "'high=lots' is not KEY=NUMBER"),
        ("lite=step:rate=2", "takes no such parameter"),
        ("Lite=step", "lowercase letters"),
        ("lite_pool=step", "lowercase letters"),
        ("-lite=step", "lowercase letters"),
        (f"{'a' * 31}=step", "at most 30"),
        ("lite=step:service_ms=0", "service_ms must be >= 1"),
    ],
)
def test_bad_pools_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pool(text)


def test_a_pool_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"named twice: \['lite'\]"):
        parse_pools(["lite=step", "big=steady", "lite=spike"])


def test_pools_setting_gives_each_pool_its_synthetic_model() -> None:
    loads = parse_pools(["lite=step", "big=steady:service_ms=1500"])
    assert pools_setting(loads) == "lite=synthetic_sleep_lite;big=synthetic_sleep_big"
