"""Feed a stored batch into the embedded run's in-process queue as fast as it drains.

Owns: `Feeder`, a thread that publishes a batch's job ids page by page while the `llmq`
queue holds fewer than `max_backlog` messages. The embedded broker (`memory://`) keeps every
message in this process's memory (~1.6 KB each), so publishing 200,000 ids at once held
~320 MB; fed like this the queue stays short and memory stays flat in the batch's size.
Must not: decide anything about a job or write the ledger itself (core.ledger repos do).

Safety net: jobs not published yet are `queued` in the ledger with `enqueued_at` up to
`producer.submit.UNSENT_HOLD` ahead (set at insert, renewed every `touch_every_s`), so the
sweeper does not flood the queue with them; should the feeder stop, they age and the sweeper
sends them after all. After an interrupt, `llmq run --resume` feeds the unfinished ones again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core.ledger import batch_submit_repo
from core.ledger.db import session_scope
from core.names import JOB_QUEUE
from core.publish import enqueue_job_ids
from producer.submit import UNSENT_HOLD

log = logging.getLogger(__name__)

POLL_S = 0.02  # seconds between looks at the queue's length
MIN_PAGE = 64  # publish when at least this much room (fewer, larger publishes)


class Feeder(threading.Thread):
    """Publishes the batch's queued jobs in input order, keeping the queue short.

    Args:
        max_backlog: messages waiting in the queue at most (e.g. 4 x worker concurrency).
        touch_every_s: seconds between refreshing the unsent jobs' `enqueued_at`.
    """

    def __init__(  # noqa: PLR0913 - where the batch is and how fast to feed it
        self,
        sessions: sessionmaker[Session],
        broker_url: str,
        batch_id: uuid.UUID,
        max_backlog: int,
        touch_every_s: float = UNSENT_HOLD.total_seconds() / 3,
    ) -> None:
        super().__init__(name="llmq-feeder", daemon=True)
        self.sessions, self.broker_url, self.batch_id = sessions, broker_url, batch_id
        self.max_backlog = max(max_backlog, MIN_PAGE)
        self.touch_every_s = touch_every_s
        self.sent = 0
        self.error: Exception | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        from workers.app import app  # the embedded runtime has pointed it at memory://

        last_line, touched = 0, time.monotonic()  # the insert set the first hold
        try:
            with app.connection_for_write() as conn:
                channel = conn.default_channel
                while not self._stop_event.is_set():
                    if time.monotonic() - touched >= self.touch_every_s:
                        self._touch(last_line)
                        touched = time.monotonic()
                    room = self.max_backlog - _queue_length(channel)
                    if room < MIN_PAGE:
                        time.sleep(POLL_S)
                        continue
                    with session_scope(self.sessions) as session:
                        page = batch_submit_repo.unfinished_job_ids(
                            session, self.batch_id, last_line, room
                        )
                    if not page:
                        return
                    self.sent += enqueue_job_ids(self.broker_url, [jid for _, jid in page])
                    last_line = page[-1][0]
        except Exception as exc:  # noqa: BLE001 - the sweeper sends what is left
            self.error = exc
            log.warning("feeder stopped (%s); the sweeper sends the remaining jobs", exc)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def _touch(self, last_line: int) -> None:
        with session_scope(self.sessions) as session:
            until = datetime.now(UTC) + UNSENT_HOLD
            batch_submit_repo.touch_unsent(session, self.batch_id, last_line, until)


def _queue_length(channel: object) -> int:
    ok = channel.queue_declare(queue=JOB_QUEUE, passive=True)  # type: ignore[attr-defined]
    return int(ok.message_count)
