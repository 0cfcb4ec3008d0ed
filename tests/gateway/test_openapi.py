"""/openapi.json (what /docs shows): examples that work as they are, one error body with what
each status means, the headers and the API-key scheme, tags in order, every job field described."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def spec_of(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_every_submission_example_is_accepted_as_it_is(client: TestClient) -> None:
    body = spec_of(client)["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    examples = body["examples"]
    assert len(examples) >= 2 and all(e["summary"] for e in examples.values())
    for name, example in examples.items():
        response = client.post("/v1/jobs", json=example["value"])  # what "Try it out" sends
        assert response.status_code == 202, (name, response.text)


def test_one_error_schema_with_a_description_per_status(client: TestClient) -> None:
    spec = spec_of(client)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas  # never answered
    assert set(schemas["Error"]["required"]) == {"error", "request_id"}
    shared = spec["components"]["responses"]
    descriptions = set()
    for status, response in shared.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        example = response["content"]["application/json"]["example"]
        assert example["error"]["code"] and example["request_id"]
        descriptions.add(response["description"])
        if status in ("429", "503"):
            assert "Retry-After" in response["headers"]
    assert len(descriptions) == len(shared)  # each status says what it means
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert response == {"$ref": f"#/components/responses/{status}"}, (path, method, status)


def test_submission_headers_and_the_api_key_scheme(client: TestClient) -> None:
    spec = spec_of(client)
    post = spec["paths"]["/v1/jobs"]["post"]
    accepted = post["responses"]["202"]
    assert set(accepted["headers"]) == {"Location", "X-Request-ID", "Idempotent-Replayed"}
    assert accepted["content"]["application/json"]["examples"]["queued"]["value"]["status"] == "queued"
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"] if p["in"] == "header"]
    headers = spec["components"]["headers"]
    assert {"X-Request-ID", "Location", "Retry-After", "Idempotent-Replayed"} <= set(headers)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, _, op in operations(spec):
        if path.startswith("/v1/jobs"):
            assert {"ApiKey": []} in op["security"] and {} in op["security"]  # optional: keys may be off


def test_tags_in_order_and_job_fields_described(client: TestClient) -> None:
    spec = spec_of(client)
    tags = spec["tags"]
    assert tags[0]["name"] == "jobs" and all(t["description"] for t in tags)
    used = {t for _, _, op in operations(spec) for t in op.get("tags", [])}
    assert used <= {t["name"] for t in tags}
    job = spec["components"]["schemas"]["JobView"]
    assert all(field.get("description") for field in job["properties"].values()), job["properties"]
    assert not {"idempotency_key", "client_id", "callback_url"} & set(job["properties"])  # never answered
    got = client.get("/v1/jobs/0123456789abcdef0123456789abcdef")  # a real answer has the documented shape
    assert got.status_code == 404 and set(got.json()) == {"error", "request_id"}
    examples = spec["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    for example in examples["examples"].values():
        # `queue` (the place in the queue) is there while the job is queued only
        absent = set() if example["value"]["status"] == "queued" else {"queue"}
        assert set(example["value"]) == set(job["properties"]) - absent


def test_listing_and_retry_are_documented_with_examples(client: TestClient) -> None:
    spec = spec_of(client)
    listing = spec["paths"]["/v1/jobs"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"status", "model", "created_after", "created_before", "limit", "cursor"} <= names
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["default"], limit["maximum"]) == (50, 200)
    ok = listing["responses"]["200"]
    assert ok["headers"]["Link"] == {"$ref": "#/components/headers/Link"}
    page = ok["content"]["application/json"]["examples"]["a page"]["value"]
    assert page["next"] and page["jobs"][0]["retry_of"] == page["jobs"][1]["id"]
    assert page["jobs"][1]["retried_by"] == page["jobs"][0]["id"]
    # The example's next link is a real cursor's shape: the service accepts it.
    assert client.get(page["next"]).status_code == 200

    retry = spec["paths"]["/v1/jobs/{job_id}/retry"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in retry["parameters"] if p["in"] == "header"]
    accepted = retry["responses"]["202"]
    assert set(accepted["headers"]) == {"Location", "X-Request-ID", "Idempotent-Replayed"}
    assert accepted["content"]["application/json"]["examples"]["retry"]["value"]["retry_of"]
    assert {"404", "409", "429"} <= set(retry["responses"])
    assert "retried" in spec["components"]["responses"]["409"]["description"]
