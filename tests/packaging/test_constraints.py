"""requirements/constraints.txt (`make constraints`, scripts/constraints.py): the versions the
images install are those the tests run with."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from scripts.constraints import TARGET, pins


@dataclass
class FakeDistribution:
    """What pins() reads of an installed distribution."""

    name: str
    version: str

    @property
    def metadata(self) -> dict[str, str]:
        return {"Name": self.name}


def test_pins_are_variant_neutral_and_leave_out_ours_and_cuda_runtime() -> None:
    found = pins(
        [
            FakeDistribution("torch", "2.14.1+cpu"),
            FakeDistribution("Torch_Vision", "0.29.1"),
            FakeDistribution("nvidia-cublas", "13.1.1.3"),
            FakeDistribution("cuda-bindings", "13.5.0"),
            FakeDistribution("triton", "3.8.0"),
            FakeDistribution("classifier-common", "0.1.0"),
            FakeDistribution("pip", "26.0"),
            FakeDistribution("FastAPI", "0.165.0"),
        ]
    )
    assert found == ["fastapi==0.165.0", "torch==2.14.1", "torch-vision==0.29.1"]


def test_the_file_pins_exactly_what_this_venv_has() -> None:
    """A dependency added or upgraded without `make constraints` fails here (CI installs from the
    file, so a package missing from it would be installed at whatever version is newest)."""
    written = [line for line in TARGET.read_text().splitlines() if line and not line.startswith("#")]
    installed = pins(list(metadata.distributions()))
    missing = sorted(set(installed) - set(written))
    stale = sorted(set(written) - set(installed))
    assert not missing and not stale, f"run `make constraints`: not in the file {missing}; not installed {stale}"
