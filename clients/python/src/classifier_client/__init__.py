"""A Python client for the image classification API, and the ``classifier`` command on top of it.

from classifier_client import Client

with Client("http://127.0.0.1:8000") as client:
    job = client.wait(client.submit("efficientnet_lite0", image="n01531178_goldfinch.JPEG"), timeout=60)
    print(job["result"]["predictions"][0]["label"])
"""

from classifier_client._calls import DEFAULT_MODEL, DEFAULT_URL, Retry
from classifier_client.bodies import (
    Batch,
    BatchItem,
    Image,
    Info,
    Job,
    Model,
    PoolStats,
    Prediction,
    QueuePosition,
    Stats,
    finished,
)
from classifier_client.client import AsyncClient, Client, Outcome
from classifier_client.errors import (
    ApiError,
    BadRequest,
    ClassifierError,
    Conflict,
    InvalidInput,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
    WaitTimeout,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "BatchItem",
    "ClassifierError",
    "Client",
    "Conflict",
    "Image",
    "Info",
    "InvalidInput",
    "Job",
    "Model",
    "NotFound",
    "Outcome",
    "PoolStats",
    "Prediction",
    "QueuePosition",
    "Retry",
    "ServerError",
    "Stats",
    "TooManyRequests",
    "Unauthorized",
    "Unreachable",
    "WaitTimeout",
    "finished",
]
