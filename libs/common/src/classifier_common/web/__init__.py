"""What every HTTP service shares, one module a topic: the error body and handlers (errors), the
request id and request metrics (context), /healthz, /readyz and /metrics (health), the offline
docs page (docs), and the app that puts them together (app)."""

from classifier_common.request_ids import REQUEST_ID_HEADER
from classifier_common.web.app import create_app
from classifier_common.web.context import RequestContextMiddleware
from classifier_common.web.errors import ERROR_RESPONSE_SCHEMA, error_response, install_error_handlers
from classifier_common.web.health import health_router

__all__ = [
    "ERROR_RESPONSE_SCHEMA",
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "create_app",
    "error_response",
    "health_router",
    "install_error_handlers",
]
