"""Request ids: each HTTP request's, echoed in the X-Request-ID response header and the error
body, and carried into the logs and the job. Here without the web framework, so the worker's own
port keeps the same rule."""

from __future__ import annotations

from classifier_common.random_ids import uuid4_hex

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 64


def request_id_for(incoming: str | None) -> str:
    """The client's X-Request-ID when it is sane (printable, at most 64 characters), else a new one."""
    if incoming and len(incoming) <= MAX_REQUEST_ID_LENGTH and incoming.isprintable():
        return incoming
    return uuid4_hex()


def id_in_head(head: bytes) -> str | None:
    """The X-Request-ID in the raw bytes of a request head that was cut off or could not be
    parsed, if a whole line of it came: the id to answer such a request with."""
    name = REQUEST_ID_HEADER.lower().encode("ascii")
    for line in head.split(b"\n")[1:-1]:  # past the request line; whole lines only
        if not line.strip():
            break  # the end of the head
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None
