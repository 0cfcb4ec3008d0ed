"""The dead-letter queue's consumer: no job stays ``queued`` or ``running`` once its message is gone.

The broker dead-letters a message that a worker rejected as poison, or that ran out of
deliveries (every attempt ended without an outcome: workers killed by the image, or a store
outage longer than the delivery limit lasts). Nothing would ever deliver that job again, so the
reconciler fails it with the code ``dead_lettered`` (a conditional write: a job that finished
meanwhile keeps its outcome), counts it in ``classifier_jobs_dead_lettered_total`` and announces
it, so a long-poll waiting on it answers. Then the message is dropped; its first bytes are logged.
While the store is unreachable the message is kept and tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from classifier_common import metrics
from classifier_common.broker import DeadLetter, DeadLetterConsumer
from classifier_common.domain import JobError, utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.logs import job_context
from classifier_common.messages import decode
from classifier_common.store import JobStore

log = logging.getLogger(__name__)

ERROR_CODE = "dead_lettered"
_WHY = {
    "delivery_limit": "every delivery of its message ended without an outcome",
    "rejected": "its message was rejected as unreadable",
}


def job_id_of(dead: DeadLetter) -> str | None:
    """The job a dead letter was for: the message id the gateway set, else the message's own."""
    if dead.message_id:
        return dead.message_id
    try:
        return decode(dead.body).job_id
    except Exception:  # a poison message: it names no job
        return None


class Reconciler:
    def __init__(self, store: JobStore, dead_letters: DeadLetterConsumer, announce: Callable[[list[str]], None]):
        self.store = store
        self.dead_letters = dead_letters
        self.announce = announce

    def start(self) -> None:
        self.dead_letters.start(self.handle)

    def stop(self) -> None:
        self.dead_letters.close()

    def handle(self, dead: DeadLetter) -> bool:
        """True once the dead letter is dealt with; False to have it again (store unreachable)."""
        job_id = job_id_of(dead)
        extra = {"reason": dead.reason, "body_prefix": dead.body[:200].decode("utf-8", "replace")}
        if job_id is None:
            log.warning("dead letter names no job; dropped", extra=extra)
            return True
        with job_context(job_id, None):
            why = _WHY.get(dead.reason, f"its message was dead-lettered ({dead.reason})")
            try:
                job = self.store.get(job_id)
                wrote = (
                    job is not None
                    and not job.status.finished
                    and self.store.fail(
                        job_id, JobError(code=ERROR_CODE, message=f"the job will not run: {why}"), utcnow()
                    )
                )
            except StoreUnavailable as exc:
                log.warning("dead letter kept: the store is unavailable (%s)", exc.message, extra=extra)
                return False
            if not wrote:
                log.info("dead letter of a job that is finished or gone; dropped", extra=extra)
                return True
            metrics.JOBS_DEAD_LETTERED.labels(dead.reason).inc()
            log.warning("job failed: %s", why, extra={**extra, "error_code": ERROR_CODE})
            self.announce([job_id])
            return True
