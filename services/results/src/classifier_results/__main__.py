"""``python -m classifier_results``"""

from __future__ import annotations

from classifier_common import logs as clog
from classifier_common import server
from classifier_common.command import parse_command_line
from classifier_common.config import Settings
from classifier_results.main import create_app

DEFAULT_PORT = 8001


def main() -> None:
    parse_command_line(
        "python -m classifier_results", "The results service alone (GET/DELETE /v1/jobs/{id}, callbacks).", DEFAULT_PORT
    )
    settings = Settings()
    clog.configure("results", settings.log_level, settings.log_format)
    server.run(create_app(settings), settings, settings.port or DEFAULT_PORT)


if __name__ == "__main__":
    main()
