"""``python -m classifier_standalone`` (``make run``): the whole system in one process."""

from __future__ import annotations

import logging
import sys

from classifier_common import logs as clog
from classifier_common import server
from classifier_common.command import parse_command_line
from classifier_common.config import Settings
from classifier_standalone.app import create_app
from classifier_standalone.lock import DataDirInUse, lock_data_dir

DEFAULT_PORT = 8000

log = logging.getLogger("classifier_standalone")


def main() -> int:
    parse_command_line(
        "python -m classifier_standalone",
        "The whole system in one process: gateway, results service and worker threads (make run).",
        DEFAULT_PORT,
    )
    settings = Settings()
    clog.configure("standalone", settings.log_level, settings.log_format)
    port = settings.port or DEFAULT_PORT
    if settings.spool_dir is not None:
        try:
            lock = lock_data_dir(settings.spool_dir)  # noqa: F841 - held until the process exits
        except DataDirInUse as exc:
            log.error("%s", exc)
            return 1
    log.info("the whole system in one process: store %s, open http://%s:%d/", settings.store_url, settings.host, port)
    server.run(create_app(settings), settings, port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
