"""The request id on every answer, a 500's included: a client quoting it finds the log line."""

from __future__ import annotations

from fastapi.testclient import TestClient

from classifier_common.web import create_app
from tests.utils.api import assert_error_shape


def _app_with_a_bug() -> TestClient:
    app = create_app("test", "test", "an app whose route fails")

    @app.get("/boom")
    def boom() -> None:
        raise KeyError("a bug")

    return TestClient(app, raise_server_exceptions=False)


def test_an_unexpected_error_is_a_500_with_the_request_id() -> None:
    client = _app_with_a_bug()
    body = assert_error_shape(client.get("/boom"), 500, "internal_error")
    assert body["request_id"]
    assert "a bug" not in body["error"]["message"]  # the cause stays in the log


def test_a_500_keeps_the_request_id_the_client_sent() -> None:
    response = _app_with_a_bug().get("/boom", headers={"X-Request-ID": "trace-me-42"})
    body = assert_error_shape(response, 500, "internal_error")
    assert body["request_id"] == "trace-me-42"
