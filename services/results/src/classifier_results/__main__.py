"""``python -m classifier_results``"""

from __future__ import annotations

from classifier_common import logs as clog
from classifier_common import server
from classifier_common.config import Settings
from classifier_results.main import create_app

DEFAULT_PORT = 8001


def main() -> None:
    settings = Settings()
    clog.configure("results", settings.log_level, settings.log_format)
    server.run(create_app(settings), settings, settings.port or DEFAULT_PORT)


if __name__ == "__main__":
    main()
