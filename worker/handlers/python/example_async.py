#!/usr/bin/python3
"""An asynchronous workq handler: several tasks at once on one event loop.

The payload is a number of milliseconds to sleep; the result says when it
woke.  handlers = ( { type = "nap"; kind = "process"; max_in_flight = 16;
  argv = [ "/usr/bin/python3", "/srv/app/example_async.py" ]; } );
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workq_handler  # noqa: E402


async def nap(task):
    ms = int(task.text or "0")
    start = time.monotonic()
    task.progress(50, "napping")    # `workq status` shows it
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms, "start": start, "end": time.monotonic(),
            "traceparent": task.headers.get("traceparent")}


workq_handler.run_async(nap)
