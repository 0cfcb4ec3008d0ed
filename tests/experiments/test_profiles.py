"""Load profiles: rates, exact expected counts and the deterministic submission schedule."""

from __future__ import annotations

import pytest

from experiments.profiles import PROFILES, LoadProfile, by_name, ramp, spike, steady, step


def test_step_profile_rates_and_count() -> None:
    profile = step(base=1, high=5, at_s=10, hold_s=20, tail_s=10)
    assert profile.duration_s == 40
    assert profile.rate(5) == 1
    assert profile.rate(10) == 5  # right-continuous at the jump
    assert profile.rate(29.9) == 5
    assert profile.rate(30) == 1
    assert profile.expected(40) == pytest.approx(10 * 1 + 20 * 5 + 10 * 1)
    assert profile.load_onset_s() == 10


def test_ramp_integrates_the_linear_part() -> None:
    profile = ramp(start=0, peak=4, ramp_s=10, hold_s=5, tail_s=5)
    assert profile.rate(5) == pytest.approx(2)
    assert profile.expected(10) == pytest.approx(20)  # triangle: 10 s x 4 / 2
    assert profile.expected(15) == pytest.approx(40)
    assert profile.load_onset_s() == 0


def test_spike_is_short_and_high() -> None:
    profile = spike(base=0.5, peak=8, at_s=60, width_s=30, tail_s=60)
    assert profile.rate(59) == 0.5
    assert profile.rate(75) == 8
    assert profile.rate(91) == 0.5
    assert profile.expected(150) == pytest.approx(0.5 * 60 + 8 * 30 + 0.5 * 60)


def test_steady_keeps_one_rate_and_never_rises() -> None:
    profile = steady(rate=0.5, duration_s=120)
    assert profile.duration_s == 120
    assert profile.rate(0) == profile.rate(60) == profile.rate(120) == 0.5
    assert profile.expected(120) == pytest.approx(60)
    assert profile.load_onset_s() == 0
    assert len(profile.submission_times()) == 60


def test_submission_times_follow_the_expected_count() -> None:
    profile = step(base=1, high=4, at_s=10, hold_s=10, tail_s=0)
    times = profile.submission_times()
    assert len(times) == round(profile.expected(profile.duration_s)) == 50
    assert times == sorted(times)
    # One a second before the step, four a second after it.
    assert times[:3] == pytest.approx([1, 2, 3])
    assert times[10:14] == pytest.approx([10.25, 10.5, 10.75, 11.0])
    for k, t in enumerate(times, start=1):
        assert profile.expected(t) == pytest.approx(k, abs=1e-4)


def test_submission_times_are_deterministic() -> None:
    assert spike().submission_times() == spike().submission_times()


def test_profiles_by_name() -> None:
    assert set(PROFILES) == {"step", "ramp", "spike", "steady"}
    assert by_name("step", high=2).rate(100) == 2
    with pytest.raises(ValueError, match="unknown profile"):
        by_name("sine")


@pytest.mark.parametrize(
    "points",
    [
        ((0, 1),),
        ((1, 1), (2, 1)),
        ((0, 1), (5, 1), (3, 1)),
        ((0, 1), (5, -1)),
    ],
)
def test_invalid_profiles_are_rejected(points: tuple) -> None:
    with pytest.raises(ValueError):
        LoadProfile("bad", points)
