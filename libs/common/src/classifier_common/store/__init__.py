"""The job store, chosen by URL (``CLASSIFIER_STORE_URL``).

- ``sqlite:///relative/path.db`` (relative to the working directory) or
  ``sqlite:////absolute/path.db``: the embedded default, one file.
- ``mongodb://...`` or ``mongodb+srv://...``: production; the database is the URL's path
  (``mongodb://host:27017/classifier``), ``classifier`` when the path is empty.

An in-memory SQLite database is not offered: every thread has its own connection, and each
would see a different empty database. Tests use a file under a temporary directory.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from classifier_common.store.base import CacheKey, FinishedJob, JobQuery, JobStore, WorkerInfo

__all__ = ["CacheKey", "FinishedJob", "JobQuery", "JobStore", "WorkerInfo", "open_store", "sqlite_path"]

_SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:///`` URL names: ``sqlite:///data/jobs.db`` -> ``data/jobs.db``,
    ``sqlite:////var/lib/jobs.db`` -> ``/var/lib/jobs.db``."""
    if not url.startswith(_SQLITE_PREFIX):
        raise ValueError(
            f"invalid SQLite store URL {url!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"invalid SQLite store URL {url!r}: no query or fragment is understood")
    path = unquote(url[len(_SQLITE_PREFIX) :])
    if not path or path.endswith("/") or path == ":memory:":
        raise ValueError(f"invalid SQLite store URL {url!r}: it must name a database file")
    return path


def open_store(url: str, *, retention_s: int = 7 * 24 * 3600) -> JobStore:
    """The store for ``url``. Opening does not connect: the first call does, and raises
    StoreUnavailable if it cannot. ``retention_s`` sets Mongo's TTL indexes; on SQLite the
    caller purges periodically with ``purge_finished``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    # Imported here so that a process only loads the driver it uses.
    if scheme == "sqlite":
        from classifier_common.store.sqlite import SqliteJobStore

        return SqliteJobStore(sqlite_path(url))
    if scheme in {"mongodb", "mongodb+srv"}:
        from classifier_common.store.mongo import MongoJobStore

        return MongoJobStore(url, retention_s=retention_s)
    raise ValueError(
        f"unsupported store URL {_redact(url)!r}: use sqlite:///path/to/jobs.db, mongodb://... or mongodb+srv://..."
    )


def _redact(url: str) -> str:
    """The URL without its password, fit for an error message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
