"""`helm test`: submit a gallery job through the gateway Service and follow it on the results
Service until it succeeded. Standard library only: the slim images have no curl.

Configured by environment variables (set by templates/tests/smoke-test.yaml):
GATEWAY_URL, RESULTS_URL, TEST_MODEL, TEST_IMAGE, EXPECTED_CLASS_INDEX (optional),
TIMEOUT_SECONDS, CLASSIFIER_API_KEYS (optional, comma-separated; the first one is sent).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FINISHED = {"succeeded", "failed", "canceled"}


def call(method, url, body=None, headers=None):
    """One HTTP request; returns (status, headers, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                response.headers,
                json.loads(response.read() or b"null"),
            )
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload.decode(errors="replace")
        return error.code, error.headers, parsed


def main():
    gateway = os.environ["GATEWAY_URL"].rstrip("/")
    results = os.environ["RESULTS_URL"].rstrip("/")
    model = os.environ["TEST_MODEL"]
    image = os.environ["TEST_IMAGE"]
    expected = os.environ.get("EXPECTED_CLASS_INDEX", "")
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "300"))
    headers = {}
    api_keys = [key.strip() for key in os.environ.get("CLASSIFIER_API_KEYS", "").split(",") if key.strip()]
    if api_keys:
        headers = {"X-API-Key": api_keys[0]}

    status, response_headers, job = call("POST", f"{gateway}/v1/jobs", {"model": model, "image": image}, headers)
    if status != 202:
        print(f"FAIL: POST /v1/jobs answered {status}: {job}")
        return 1
    location = response_headers.get("Location")
    if not location:
        print(f"FAIL: 202 without a Location header: {job}")
        return 1
    job_url = urllib.parse.urljoin(results + "/", location.lstrip("/"))
    print(f"submitted {image} to {model}: {location}", flush=True)

    while True:
        status, _, job = call("GET", f"{job_url}?wait=10", headers=headers)  # with keys on, a job is its key's
        state = job.get("status") if status == 200 and isinstance(job, dict) else None
        if state in FINISHED:
            break
        if time.monotonic() > deadline:
            print(f"FAIL: job not finished in time; last answer {status}: {job}")
            return 1
        print(f"  {status} {state or job}", flush=True)
        time.sleep(1)

    if state != "succeeded":
        print(f"FAIL: job {state}: {json.dumps(job)}")
        return 1
    predictions = (job.get("result") or {}).get("predictions") or []
    print("succeeded:", ", ".join(f"{p['label']} ({p['score']:.2f})" for p in predictions))
    if expected and int(expected) not in {p["class_index"] for p in predictions}:
        print(f"FAIL: class {expected} is not among the predictions")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
