"""Settings: worker pools read from CLASSIFIER_POOLS, validated at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from classifier_common.config import DEFAULT_POOL, Settings, parse_pools

TWO_POOLS = "lite=efficientnet_lite0,efficientnet_lite1;big=efficientnet_lite2"


def test_compact_form_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSIFIER_POOLS", TWO_POOLS)
    monkeypatch.setenv("CLASSIFIER_POOL", "big")
    settings = Settings()
    assert settings.pools == {"lite": ["efficientnet_lite0", "efficientnet_lite1"], "big": ["efficientnet_lite2"]}
    assert settings.pool == "big"
    assert settings.pool_models("big") == ["efficientnet_lite2"]


def test_spaces_and_trailing_separators_are_ignored() -> None:
    assert parse_pools(" lite = efficientnet_lite0 , efficientnet_lite1 ; ; big=efficientnet_lite2; ") == {
        "lite": ["efficientnet_lite0", "efficientnet_lite1"],
        "big": ["efficientnet_lite2"],
    }


def test_routing_helpers() -> None:
    settings = Settings(pools=TWO_POOLS, queue_name="q")
    assert settings.pool_for_model("efficientnet_lite1") == "lite"
    assert settings.pool_for_model("efficientnet_lite2") == "big"
    assert settings.pool_for_model("resnet18") is None  # known model, no pool serves it
    assert settings.queue_for_pool("lite") == "q.lite"
    assert Settings().queue_for_pool(DEFAULT_POOL) == "classifier.jobs.default"


def test_unset_is_one_default_pool_serving_every_model() -> None:
    settings = Settings(pools="")
    assert settings.pools == {DEFAULT_POOL: []}
    assert settings.pool_for_model("resnet18") == DEFAULT_POOL
    assert settings.pool_models(DEFAULT_POOL) == []  # empty: every model whose weights are present


def test_unset_with_models_is_one_default_pool_serving_those() -> None:
    settings = Settings(models="efficientnet_lite0,efficientnet_lite1")
    assert settings.pools == {DEFAULT_POOL: ["efficientnet_lite0", "efficientnet_lite1"]}
    assert settings.pool_for_model("efficientnet_lite1") == DEFAULT_POOL
    assert settings.pool_for_model("efficientnet_lite2") is None


def test_pools_replace_models() -> None:
    settings = Settings(pools="big=efficientnet_lite2", models="efficientnet_lite0")
    assert settings.pools == {"big": ["efficientnet_lite2"]}
    assert settings.pool_for_model("efficientnet_lite0") is None


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ("a=efficientnet_lite0;b=efficientnet_lite0", "'efficientnet_lite0' is in two pools: 'a' and 'b'"),
        ("a=efficientnet_lite0,efficientnet_lite0", "lists 'efficientnet_lite0' twice"),
        ("a=efficientnet_lite0;b=", "pool 'b' serves no models"),
        ("a=efficientnet_lite0;a=efficientnet_lite1", "pool 'a' is given twice"),
        ("efficientnet_lite0", "is not name=model,model"),
        ("Lite=efficientnet_lite0", "pool name 'Lite'"),
        ("lite_0=efficientnet_lite0", "pool name 'lite_0'"),
        ("-lite=efficientnet_lite0", "pool name '-lite'"),
        ("a.b=efficientnet_lite0", "pool name 'a.b'"),
        (f"{'p' * 31}=efficientnet_lite0", "at most 30 characters"),
        ("a=efficientnet_lite9", "unknown model 'efficientnet_lite9'"),
    ],
)
def test_bad_pools_fail_at_start(pools: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(pools=pools)


def test_longest_pool_name_is_accepted() -> None:
    assert list(Settings(pools=f"{'p' * 30}=efficientnet_lite0").pools) == ["p" * 30]


def test_a_worker_of_an_unknown_pool_is_refused() -> None:
    settings = Settings(pools=TWO_POOLS)  # CLASSIFIER_POOL left at `default`
    with pytest.raises(ValueError, match="pool 'default' is not among the pools: lite, big"):
        settings.pool_models(settings.pool)
