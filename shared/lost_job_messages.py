"""A job message lost with the worker that had just popped it is sent again.

kombu's Redis transport takes a message off its queue (BRPOP) before it records it as
held (the ``unacked`` hash that the visibility sweep restores from). A worker killed
between the two loses the message outright: it is on no list and in no hash, and no
visibility timeout brings it back, so the job (a nightly close, a slice of it) would
never finish. The window is a few milliseconds wide, but a night has many slices.

So every job message is on record until its task is done:

1. **Sent.** Every Celery app of the system (``shared/celery_app.py``: the services,
   the beat, the command line, the simulator) publishes through :class:`RecordingAMQP`,
   which writes, right after each publish to a ``<service>.jobs`` queue, the task's id,
   name, arguments and options in the queue's hash ``baitiao.jobs.sent:<queue>``.
2. **Done.** A record whose task has a final state in the result backend (success,
   failure, revoked) is dropped; so is one whose message has expired (a void first
   message, ``shared/job_runner.py``).
3. **Lost.** Every ``LOST_JOB_SWEEP_SECONDS`` one worker of the service (a mutex in
   Redis) reads the queue's lists and the held messages in one ``MULTI`` (an atomic
   snapshot: a message moving from the list to the hash is seen in one of them). A
   record found in neither, and not done, is marked missing; missing again on a later
   sweep at least ``LOST_JOB_CONFIRM_SECONDS`` on, it was lost (the pop-to-record
   window lasts milliseconds, and a task that finished in between has its final state
   stored before its message is acked), and the same task (same id, same arguments) is
   sent again, so the run's waiter (``baitiao jobs run``, the simulator) sees it finish.

A record is written after its publish returns, so a sender killed between the two
leaves a message unrecorded (a second coincidence of milliseconds); the message is then
still protected by the visibility sweep once a worker holds it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import redis
from celery import Celery, bootsteps, states
from celery.app.amqp import AMQP

from shared import metrics
from shared import broker
from shared.bus.kombu_redis import priority_queue_keys
from shared.job_timing import LOST_JOB_CONFIRM_SECONDS, LOST_JOB_SWEEP_SECONDS, UNACKED_MUTEX_SECONDS
from shared.log import get_logger

log = get_logger(__name__)

SENT_KEY_PREFIX = "baitiao.jobs.sent:"
JOBS_QUEUE_SUFFIX = ".jobs"


def sent_key(queue: str) -> str:
    """The hash of the job messages sent to ``queue`` and not known to be done."""
    return f"{SENT_KEY_PREFIX}{queue}"


def sweep_mutex_key(queue: str) -> str:
    return f"{SENT_KEY_PREFIX}{queue}:sweeping"


class RecordingAMQP(AMQP):
    """Celery's AMQP with every job message put on record after its publish."""

    def _create_task_sender(self) -> Callable[..., Any]:
        send = super()._create_task_sender()
        app = self.app

        def send_task_message(producer: Any, name: str, message: Any, **options: Any) -> Any:
            result = send(producer, name, message, **options)
            queue = options.get("queue")
            queue_name = queue if isinstance(queue, str) else getattr(queue, "name", None)
            if queue_name and queue_name.endswith(JOBS_QUEUE_SUFFIX):
                try:
                    record_sent(broker_client(app), queue_name, name, message.headers, message.body)
                except redis.RedisError as exc:  # published already: sending again would double it
                    log.warning("job_message_not_recorded", queue=queue_name, task=name, error=str(exc)[:300])
            return result

        return send_task_message


_clients: dict[str, redis.Redis] = {}


def broker_client(app: Celery) -> redis.Redis:
    """A Redis client on the app's broker, one per broker URL and process."""
    url = str(app.conf.broker_url)
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = broker.broker_client(url, getattr(app, "baitiao_settings", None))
    return client


def record_sent(client: redis.Redis, queue: str, task: str, headers: dict[str, Any], body: Any) -> None:
    """Put one published job message on record (its id, what to send again)."""
    args, kwargs = (list(body[0]), dict(body[1])) if isinstance(body, (list, tuple)) else ([], {})
    entry = {
        "task": task,
        "args": args,
        "kwargs": kwargs,
        "expires": headers.get("expires"),
        "sent": time.time(),
    }
    client.hset(sent_key(queue), str(headers["id"]), json.dumps(entry))


def expired(entry: dict[str, Any], now: float) -> bool:
    """A first message with an expiry nobody took in time is void (its worker revokes it)."""
    expires = entry.get("expires")
    if not expires:
        return False
    moment = datetime.fromisoformat(expires)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() < now


class LostJobWatch:
    """The sweep of one service's job queue: drop what is done, send again what was lost."""

    def __init__(self, app: Celery, queue: str, client: redis.Redis, unacked_key: str, queue_keys: list[str]):
        self.app = app
        self.queue = queue
        self.client = client
        self.unacked_key = unacked_key
        self.queue_keys = queue_keys
        self.stopping = threading.Event()

    def sweep_once(self, now: float | None = None) -> list[str]:
        """One sweep under the service's mutex; returns the ids sent again."""
        now = time.time() if now is None else now
        if not self.client.set(sweep_mutex_key(self.queue), "1", nx=True, ex=UNACKED_MUTEX_SECONDS):
            return []  # another worker of the service is sweeping
        try:
            return self._sweep(now)
        finally:
            self.client.delete(sweep_mutex_key(self.queue))

    def _sweep(self, now: float) -> list[str]:
        key = sent_key(self.queue)
        records = {_text(k): json.loads(v) for k, v in self.client.hgetall(key).items()}
        if not records:
            return []
        done = self._done(records, now)
        if done:
            self.client.hdel(key, *done)
        open_records = {task_id: entry for task_id, entry in records.items() if task_id not in done}
        if not open_records:
            return []
        visible = self._visible(open_records)
        resent: list[str] = []
        for task_id, entry in open_records.items():
            if task_id in visible:
                if entry.get("missing_since"):
                    entry.pop("missing_since")
                    self.client.hset(key, task_id, json.dumps(entry))
            elif not entry.get("missing_since"):
                entry["missing_since"] = now
                self.client.hset(key, task_id, json.dumps(entry))
            elif now - float(entry["missing_since"]) >= LOST_JOB_CONFIRM_SECONDS:
                self._send_again(task_id, entry)
                resent.append(task_id)
        return resent

    def _done(self, records: dict[str, dict[str, Any]], now: float) -> list[str]:
        """The records whose task has a final state stored, or whose message expired."""
        ids = list(records)
        pipe = self.client.pipeline(transaction=False)
        for task_id in ids:
            pipe.get(self.app.backend.get_key_for_task(task_id))
        metas = pipe.execute()
        done = []
        for task_id, meta in zip(ids, metas, strict=True):
            status = json.loads(meta).get("status") if meta else None
            if status in states.READY_STATES or expired(records[task_id], now):
                done.append(task_id)
        return done

    def _visible(self, records: dict[str, dict[str, Any]]) -> set[str]:
        """The ids among ``records`` whose message is queued or held now, read atomically."""
        pipe = self.client.pipeline(transaction=True)
        for queue_key in self.queue_keys:
            pipe.lrange(queue_key, 0, -1)
        pipe.hvals(self.unacked_key)
        documents = [doc for found in pipe.execute() for doc in found]
        return {task_id for task_id in records if any(task_id.encode() in doc for doc in documents)}

    def _send_again(self, task_id: str, entry: dict[str, Any]) -> None:
        log.warning("job_message_sent_again", queue=self.queue, task=entry["task"], task_id=task_id)
        metrics.JOB_MESSAGES_SENT_AGAIN.labels(self.queue).inc()
        self.app.send_task(entry["task"], args=entry["args"], kwargs=entry["kwargs"], task_id=task_id, queue=self.queue)

    def run(self) -> None:
        while not self.stopping.wait(LOST_JOB_SWEEP_SECONDS):
            try:
                self.sweep_once()
            except Exception as exc:  # noqa: BLE001 - broker away: the next sweep tries again
                log.warning("lost_job_watch_retry", queue=self.queue, error=str(exc)[:300])

    def stop(self) -> None:
        self.stopping.set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def watches_for(app: Celery, channel: Any, queues: Iterable[str]) -> list[LostJobWatch]:
    """A watch per job queue this worker consumes, on the worker's Redis channel."""
    return [
        LostJobWatch(app, queue, channel.client, channel.unacked_key, priority_queue_keys(channel, queue))
        for queue in queues
        if queue.endswith(JOBS_QUEUE_SUFFIX)
    ]


class LostJobWatchStep(bootsteps.StartStopStep):
    """Runs the :class:`LostJobWatch` of the worker's job queues in its main process."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.connection: Any = None
        self.watches: list[LostJobWatch] = []
        self.threads: list[threading.Thread] = []

    def start(self, worker: Any) -> None:
        self.connection = worker.app.connection_for_write()
        channel = self.connection.default_channel
        if not hasattr(channel, "unacked_key"):
            return  # not kombu's Redis transport
        self.watches = watches_for(worker.app, channel, [worker.app.conf.task_default_queue])
        for watch in self.watches:
            thread = threading.Thread(target=watch.run, name=f"lost-job-watch-{watch.queue}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, worker: Any) -> None:
        for watch in self.watches:
            watch.stop()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.connection is not None:
            self.connection.release()
            self.connection = None

    def terminate(self, worker: Any) -> None:
        self.stop(worker)
