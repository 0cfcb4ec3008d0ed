"""``python -m classifier_gateway`` — with the default settings, the whole system in one process."""

from __future__ import annotations

import logging

from classifier_common import logging as clog
from classifier_common import server
from classifier_common.config import Settings
from classifier_gateway.main import create_app

DEFAULT_PORT = 8000

log = logging.getLogger("classifier_gateway")


def main() -> None:
    settings = Settings()
    clog.configure("gateway", settings.log_level, settings.log_format)
    port = settings.port or DEFAULT_PORT
    if settings.embedded:
        log.info(
            "embedded mode: in-process queue, store %s, open http://%s:%d/", settings.store_url, settings.host, port
        )
    server.run(create_app(settings), settings, port)


if __name__ == "__main__":
    main()
