"""workq_handler - run workq tasks in a long-lived Python process.

A single file with no dependencies beyond the standard library (Python
3.7+): copy it into your project.  It speaks version 1 of the process
handler protocol (docs/handler-protocol.md in the workq repository) with
workq-worker, which starts this program (handlers kind "process") and
sends it tasks on stdin; answers go to stdout.  Because stdout carries the
protocol, this module moves file descriptor 1 to stderr at start: print()
and logging end up in the worker's log, not in the protocol.

Synchronous handlers (run in up to max_in_flight threads):

    import workq_handler

    def resize(task):
        if not task.payload:
            raise workq_handler.Fail("empty payload")   # dead, no retry
        return b"done"                                   # the result

    workq_handler.run(resize)

Asynchronous handlers (one event loop, up to max_in_flight at once):

    async def fetch(task):
        await asyncio.sleep(0.1)
        return {"ok": True}                              # JSON result

    workq_handler.run_async(fetch)

A handler returns the result (bytes, str, None for empty, or anything
json.dumps takes), raises Retry(text) for a failure worth retrying, Fail(text)
for a permanent one; any other exception is retried with its text.  A
cancelled task (workq cancel, or the worker giving up) has task.cancelled
set (a threading.Event; in async mode its coroutine is cancelled too).
"""

import asyncio
import base64
import json
import os
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

PROTOCOL = 1
LIBRARY = "workq_handler.py/1.0"

__all__ = ["Task", "Retry", "Fail", "run", "run_async", "PROTOCOL"]


class Retry(Exception):
    """The attempt failed; the task is tried again after its backoff."""


class Fail(Exception):
    """The task failed for good: it goes dead without another attempt."""


class Task:
    """One task, as the worker's "task" frame carries it."""

    __slots__ = ("id", "task_id", "queue", "type", "key", "attempt",
                 "max_attempts", "deadline_ms", "headers", "payload",
                 "cancelled", "_channel")

    def __init__(self, frame, channel=None):
        self._channel = channel
        self.id = frame["id"]
        self.task_id = frame.get("task_id", "")
        self.queue = frame.get("queue", "")
        self.type = frame.get("type", "")
        self.key = frame.get("key", "")
        self.attempt = frame.get("attempt", 1)
        self.max_attempts = frame.get("max_attempts", 1)
        self.deadline_ms = frame.get("deadline_ms")   # epoch ms or None
        self.headers = frame.get("headers") or {}     # traceparent, ...
        if "payload_base64" in frame:
            self.payload = base64.b64decode(frame["payload_base64"])
        else:
            self.payload = frame.get("payload", "").encode("utf-8")
        self.cancelled = threading.Event()

    def progress(self, percent, message=None):
        """Reports how far the task is: percent 0..100 and a short message.
        Cheap: call it as often as you like (the worker writes the latest
        at most once a second); a no-op with a worker that does not take
        progress."""
        if self._channel is not None and self._channel.progress_ok:
            frame = {"t": "progress", "id": self.id, "percent": int(percent)}
            if message is not None:
                frame["message"] = str(message)
            self._channel.send(frame)

    @property
    def text(self):
        """The payload as text (UTF-8)."""
        return self.payload.decode("utf-8")

    def json(self):
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class _Channel:
    """The protocol's two pipes: frames in on stdin, frames out."""

    def __init__(self):
        # the protocol keeps the real stdout; fd 1 becomes stderr so that
        # stray prints cannot corrupt a frame
        self._out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._in = sys.stdin.buffer
        self._lock = threading.Lock()
        self._pending = []          # run_async: frames of this turn
        self._flush_due = False     # run_async: a flush is scheduled
        self.defer = None           # run_async: schedules a flush
        self.max_in_flight = 1
        self.progress_ok = False
        self.send({"t": "hello", "protocol": PROTOCOL, "library": LIBRARY})
        hello = self.read()
        if hello is None:
            sys.exit(0)
        if hello.get("t") != "hello" or hello.get("protocol") != PROTOCOL:
            sys.stderr.write("workq_handler: the worker speaks protocol %r, "
                             "this library %d\n" % (hello.get("protocol"),
                                                   PROTOCOL))
            sys.exit(2)
        self.max_in_flight = int(hello.get("max_in_flight", 1))
        self.progress_ok = "progress" in (hello.get("features") or [])

    def read(self):
        """The next frame, or None at end of input (the worker stops)."""
        while True:
            line = self._in.readline()
            if not line:
                return None
            line = line.strip()
            if line:
                return json.loads(line)

    def send(self, frame):
        """Writes frame; with defer set (run_async), queues it, and the
        loop's next turn writes what this turn answered in one write (one
        read for the worker, not one per answer).  Threads write at once:
        coalescing theirs measured slower (GIL handoffs)."""
        data = (json.dumps(frame, separators=(",", ":"))
                + "\n").encode("utf-8")
        if self.defer is None:
            with self._lock:
                self._write(data)
            return
        with self._lock:
            self._pending.append(data)
            if self._flush_due:
                return
            self._flush_due = True
        self.defer(self.flush)

    def flush(self):
        """Writes the queued frames."""
        with self._lock:
            self._flush_due = False
            batch = b"".join(self._pending)
            self._pending.clear()
            self._write(batch)

    def _write(self, data):
        view = memoryview(data)
        while view:
            view = view[self._out.write(view):]

    def answer(self, tid, result=None, error=None):
        if error is not None:
            kind, text = error
            self.send({"t": "result", "id": tid, "status": kind,
                       "error": text})
            return
        if result is None:
            result = b""
        elif isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, (bytes, bytearray)):
            result = json.dumps(result).encode("utf-8")
        try:
            frame = {"t": "result", "id": tid, "status": "ok",
                     "result": result.decode("utf-8")}
        except UnicodeDecodeError:
            frame = {"t": "result", "id": tid, "status": "ok",
                     "result_base64": base64.b64encode(result).decode()}
        self.send(frame)


def _failure(exc):
    if isinstance(exc, Fail):
        return ("fail", str(exc) or "Fail")
    if isinstance(exc, Retry):
        return ("retry", str(exc) or "Retry")
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    traceback.print_exc(file=sys.stderr)
    return ("retry", last)


def run(handler):
    """Runs handler(task) for every task, in up to max_in_flight threads,
    until the worker closes stdin; then waits for running tasks and
    returns."""
    ch = _Channel()
    running = {}
    lock = threading.Lock()

    def one(task):
        try:
            res = handler(task)
        except BaseException as exc:          # noqa: B902 - answered
            if not task.cancelled.is_set():
                ch.answer(task.id, error=_failure(exc))
        else:
            if not task.cancelled.is_set():
                ch.answer(task.id, result=res)
        finally:
            with lock:
                running.pop(task.id, None)

    with ThreadPoolExecutor(max_workers=max(1, ch.max_in_flight)) as pool:
        while True:
            frame = ch.read()
            if frame is None:
                break
            t = frame.get("t")
            if t == "task":
                task = Task(frame, ch)
                with lock:
                    running[task.id] = task
                pool.submit(one, task)
            elif t == "cancel":
                with lock:
                    task = running.get(frame.get("id"))
                if task is not None:
                    task.cancelled.set()


def run_async(handler):
    """Runs the coroutine function handler(task) for every task on one
    asyncio event loop, up to max_in_flight at once, until the worker
    closes stdin and the running ones have finished."""
    ch = _Channel()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop_thread = threading.get_ident()

    def defer(flush):
        if threading.get_ident() == loop_thread:
            loop.call_soon(flush)
        else:                               # progress from a thread
            loop.call_soon_threadsafe(flush)

    ch.defer = defer
    running = {}
    eof = asyncio.Event()

    async def one(task):
        try:
            res = await handler(task)
        except asyncio.CancelledError:
            return
        except Exception as exc:              # noqa: B902 - answered
            ch.answer(task.id, error=_failure(exc))
        else:
            ch.answer(task.id, result=res)

    def on_frame(frame):
        if frame is None:
            eof.set()
            return
        t = frame.get("t")
        if t == "task":
            task = Task(frame, ch)
            fut = loop.create_task(one(task))
            running[task.id] = (task, fut)
            # on the future, not in one(): a task cancelled before its
            # first step never enters one()'s body
            fut.add_done_callback(lambda _f, tid=task.id:
                                  running.pop(tid, None))
        elif t == "cancel" and frame.get("id") in running:
            task, fut = running[frame["id"]]
            task.cancelled.set()
            fut.cancel()

    def reader():
        while True:
            frame = ch.read()
            loop.call_soon_threadsafe(on_frame, frame)
            if frame is None:
                return

    async def main():
        threading.Thread(target=reader, daemon=True).start()
        await eof.wait()
        while running:
            await asyncio.gather(*[f for _, f in running.values()],
                                 return_exceptions=True)

    try:
        loop.run_until_complete(main())
    finally:
        ch.defer = None
        ch.flush()                  # answers of the last turn
        loop.close()
