"""Load profiles for the scaling experiments: submissions per second as a function of time.

A profile is piecewise linear: a list of (time, rate) points, linear between points, a jump
where two points share a time. That is enough for a step, a ramp and a spike, keeps the number of
submissions up to any instant exact (:meth:`LoadProfile.expected`) and makes the schedule of
submissions deterministic (:meth:`LoadProfile.submission_times`): the k-th job is sent when the
expected count reaches k. The runner sends them at those times; the report compares what was
offered with what finished.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadProfile:
    name: str
    points: tuple[tuple[float, float], ...]  # (seconds from start, submissions per second)

    def __post_init__(self) -> None:
        if len(self.points) < 2 or self.points[0][0] != 0:
            raise ValueError("a profile needs at least two points, the first at t=0")
        for (t0, _), (t1, _) in zip(self.points, self.points[1:], strict=False):
            if t1 < t0:
                raise ValueError("profile times must not decrease")
        if any(rate < 0 for _, rate in self.points):
            raise ValueError("rates must be >= 0")

    @property
    def duration_s(self) -> float:
        return self.points[-1][0]

    def rate(self, t: float) -> float:
        """Submissions per second at time t (right-continuous at a jump; 0 outside the profile)."""
        if t < 0 or t > self.duration_s:
            return 0.0
        times = [p[0] for p in self.points]
        i = bisect.bisect_right(times, t) - 1
        if i >= len(self.points) - 1:
            return self.points[-1][1]
        (t0, r0), (t1, r1) = self.points[i], self.points[i + 1]
        if t1 == t0:
            return r1
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    def expected(self, t: float) -> float:
        """Submissions expected from the start up to time t: the integral of the rate."""
        t = min(max(t, 0.0), self.duration_s)
        total = 0.0
        for (t0, r0), (t1, r1) in zip(self.points, self.points[1:], strict=False):
            if t <= t0:
                break
            end = min(t, t1)
            if end > t0:
                r_end = r0 + (r1 - r0) * (end - t0) / (t1 - t0)
                total += (r0 + r_end) / 2 * (end - t0)
        return total

    def submission_times(self) -> list[float]:
        """Send times of every submission, in order: the k-th (k = 1, 2, ...) when
        :meth:`expected` reaches k. Found by bisection, exact to a microsecond."""
        count = math.floor(self.expected(self.duration_s) + 1e-9)
        times = []
        lo = 0.0
        for k in range(1, count + 1):
            a, b = lo, self.duration_s
            while b - a > 1e-6:
                mid = (a + b) / 2
                if self.expected(mid) >= k - 1e-9:
                    b = mid
                else:
                    a = mid
            times.append(round(b, 6))
            lo = b
        return times

    def time_scaled(self, factor: float) -> LoadProfile:
        """The same shape on a clock ``factor`` times as fast (0.25: a 600 s profile in 150 s),
        rates unchanged. Local experiments compress the profile and the autoscaler's time
        constants by the same factor (docs/metrics.md, "Scaling experiments")."""
        if not factor > 0:
            raise ValueError("factor must be > 0")
        return LoadProfile(self.name, tuple((round(t * factor, 6), rate) for t, rate in self.points))

    def load_onset_s(self) -> float:
        """When the rate first rises above its starting value (the instant scaling is
        measured from); the start if it never does."""
        base = self.points[0][1]
        for t, rate in self.points:
            if rate > base:
                # The rise starts at the last point still at the base rate.
                previous = [p for p in self.points if p[0] <= t and p[1] <= base]
                return previous[-1][0] if previous else 0.0
        return 0.0


def step(
    *,
    base: float = 0.5,
    high: float = 4.0,
    at_s: float = 60,
    hold_s: float = 300,
    tail_s: float = 240,
) -> LoadProfile:
    """``base`` per second, then ``high`` per second from ``at_s`` for ``hold_s``, then ``base``
    again for ``tail_s`` (long enough to see the stabilised scale-down start)."""
    end_high = at_s + hold_s
    return LoadProfile(
        "step",
        (
            (0, base),
            (at_s, base),
            (at_s, high),
            (end_high, high),
            (end_high, base),
            (end_high + tail_s, base),
        ),
    )


def ramp(
    *,
    start: float = 0.5,
    peak: float = 4.0,
    ramp_s: float = 300,
    hold_s: float = 120,
    tail_s: float = 240,
) -> LoadProfile:
    """From ``start`` to ``peak`` per second linearly over ``ramp_s``, hold, back to ``start``."""
    return LoadProfile(
        "ramp",
        (
            (0, start),
            (ramp_s, peak),
            (ramp_s + hold_s, peak),
            (ramp_s + hold_s, start),
            (ramp_s + hold_s + tail_s, start),
        ),
    )


def spike(
    *,
    base: float = 0.5,
    peak: float = 8.0,
    at_s: float = 60,
    width_s: float = 30,
    tail_s: float = 420,
) -> LoadProfile:
    """A short burst of ``peak`` per second lasting ``width_s``: tests scale-up speed and that a
    burst queued in RabbitMQ is worked off without loss."""
    return LoadProfile(
        "spike",
        (
            (0, base),
            (at_s, base),
            (at_s, peak),
            (at_s + width_s, peak),
            (at_s + width_s, base),
            (at_s + width_s + tail_s, base),
        ),
    )


def steady(*, rate: float = 0.5, duration_s: float = 600) -> LoadProfile:
    """``rate`` per second throughout: a pool that should not scale, next to one that does."""
    return LoadProfile("steady", ((0, rate), (duration_s, rate)))


PROFILES: dict[str, Callable[..., LoadProfile]] = {
    "step": step,
    "ramp": ramp,
    "spike": spike,
    "steady": steady,
}


def by_name(name: str, **overrides: float) -> LoadProfile:
    try:
        factory = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
    return factory(**overrides)
