"""The command line of each process (``python -m classifier_gateway``, ``classifier_results``,
``classifier_worker``, ``classifier_standalone``): ``--help`` and nothing else. Everything is
configured by ``CLASSIFIER_*`` environment variables (docs/configuration.md), as in a container; an
argument the command does not take is refused (exit 2) instead of starting a server that ignores it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

EPILOG = """\
settings (environment variables; all of them in docs/configuration.md):
  CLASSIFIER_HOST         the address to listen on (default 127.0.0.1)
  CLASSIFIER_PORT         the port to listen on (default {port})
  CLASSIFIER_BROKER_URL   memory:// (in this process) or amqp://user:pass@host:5672/%2F
  CLASSIFIER_STORE_URL    sqlite:///./data/jobs.db or mongodb://host:27017/classifier
  CLASSIFIER_LOG_LEVEL    debug, info (default), warning, error
"""


def parse_command_line(prog: str, description: str, default_port: int, argv: Sequence[str] | None = None) -> None:
    """Answer ``--help`` (exit 0) or refuse any argument (exit 2); return when there is none."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=EPILOG.format(port=default_port),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
