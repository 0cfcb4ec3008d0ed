"""``python -m classifier_results``"""

from __future__ import annotations

import uvicorn

from classifier_common import logging as clog
from classifier_common.config import Settings
from classifier_results.main import create_app

DEFAULT_PORT = 8001


def main() -> None:
    settings = Settings()
    clog.configure("results", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port or DEFAULT_PORT,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
