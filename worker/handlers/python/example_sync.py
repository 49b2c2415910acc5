#!/usr/bin/python3
"""A synchronous workq handler: upper-cases text payloads.

handlers = ( { type = "upper"; kind = "process";
               argv = [ "/usr/bin/python3", "/srv/app/example_sync.py" ];
               env = [ "PYTHONPATH=/srv/app" ]; } );
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workq_handler  # noqa: E402


def upper(task):
    if task.payload == b"fail":
        raise workq_handler.Fail("told to fail")
    if task.payload == b"retry" and task.attempt < 2:
        raise workq_handler.Retry("try again, attempt %d" % task.attempt)
    if task.payload == b"crash":
        os._exit(3)                 # the process dies mid-task
    print("upper: task %s attempt %d" % (task.task_id, task.attempt))
    return task.payload.upper()


workq_handler.run(upper)
