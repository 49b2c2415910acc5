#!/usr/bin/python3
"""The chaos suite's process handler (kind "process", type "proc"): takes
50-250 ms per task (so that a kill -9 of the program finds tasks in
flight), then succeeds.  It uses the reference library as a team would."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "worker", "handlers", "python"))
import workq_handler  # noqa: E402


def proc(task):
    time.sleep(random.uniform(0.05, 0.25))
    return "ok %s" % task.key


workq_handler.run(proc)
