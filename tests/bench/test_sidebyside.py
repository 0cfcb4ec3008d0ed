"""python -m bench.sidebyside: versions of the services' code, each its own stack, loaded in turn
(the order turning around each round), with each version's medians and its per-round
differences from the first. Structure only: no timing is asserted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.sidebyside import SOURCE_ROOTS, Version, order, python_path, summary
from tests.utils.modules import run_module


def test_each_round_turns_the_order_around() -> None:
    versions = [Version(name, Path(".")) for name in "abc"]
    rounds = [[v.name for v in order(versions, i)] for i in range(4)]
    assert rounds == [list("abc"), list("cba"), list("abc"), list("cba")]


def test_a_stack_runs_the_services_code_of_its_checkout(repo: Path, tmp_path: Path) -> None:
    assert python_path(repo).split(":") == [str(repo / part) for part in SOURCE_ROOTS]
    with pytest.raises(SystemExit, match="not a checkout"):
        python_path(tmp_path)


def test_the_summary_gives_medians_and_each_rounds_difference_from_the_first() -> None:
    before, after = Version("before", Path(".")), Version("after", Path("."))
    for gateway_before, gateway_after in ((3.0, 2.5), (4.0, 3.6), (3.2, 3.3)):
        before.slices.append({"images/s": 100.0, "outside the workers": gateway_before + 2, "gateway": gateway_before})
        after.slices.append({"images/s": 110.0, "outside the workers": gateway_after + 2, "gateway": gateway_after})
    lines = summary([before, after])
    assert lines[0] == (
        "before: median of 3 slices: 100.0 images/s; CPU ms per job: outside the workers 5.20, gateway 3.20"
    )
    assert lines[2] == "after - before, gateway CPU ms per job by round: -0.50, -0.40, +0.10 (median -0.40)"


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_two_versions_run_side_by_side(seeded: tuple[Path, Path], repo: Path) -> None:
    stdout = run_module(
        repo, "bench.sidebyside", f"a={repo}", f"b={repo}", "--slices", "2", "--duration", "1", "--uploads-only",
        "--models-dir", str(seeded[0]), "--gallery-dir", str(seeded[1]),
    )  # fmt: skip
    slices = re.findall(r"^(\w+) +round (\d): +([0-9.]+) images/s.*gateway ([0-9.]+)", stdout, re.M)
    assert [(name, n) for name, n, _, _ in slices] == [("a", "1"), ("b", "1"), ("b", "2"), ("a", "2")], stdout
    assert all(float(images) > 0 and float(gateway) > 0 for _, _, images, gateway in slices), stdout
    assert re.search(r"^b - a, gateway CPU ms per job by round: [-+][0-9.]+, [-+][0-9.]+ \(median ", stdout, re.M)
