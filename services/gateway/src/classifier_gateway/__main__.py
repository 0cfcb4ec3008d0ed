"""``python -m classifier_gateway``: the gateway alone (the production topology). The whole system in
one process is ``python -m classifier_standalone`` (``make run``)."""

from __future__ import annotations

import logging
import sys

from classifier_common import logs as clog
from classifier_common import server
from classifier_common.command import parse_command_line
from classifier_common.config import Settings
from classifier_gateway.main import create_app

DEFAULT_PORT = 8000

log = logging.getLogger("classifier_gateway")


def main() -> int:
    parse_command_line(
        "python -m classifier_gateway",
        "The gateway alone (POST /v1/jobs, the catalog, the page), publishing to RabbitMQ.",
        DEFAULT_PORT,
    )
    settings = Settings()
    clog.configure("gateway", settings.log_level, settings.log_format)
    port = settings.port or DEFAULT_PORT
    if settings.embedded:
        # Jobs queued in this process's memory would wait for a worker that never comes.
        log.error("CLASSIFIER_BROKER_URL is memory://: the one-process system is python -m classifier_standalone")
        return 2
    server.run(create_app(settings), settings, port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
