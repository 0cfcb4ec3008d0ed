"""Where the checkout is: the processes start from its root, and data/, gallery/ and .tools/ sit there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
