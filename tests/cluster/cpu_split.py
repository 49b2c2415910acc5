#!/usr/bin/env python3
"""tests/cluster/cpu_split.py - where the CPU went during a cluster run
(tests/cluster/scale.sh): samples, every 0.5 s until SIGTERM (or at most
LIMIT seconds), the CPU time of every process, grouped by the bed's host
it runs on (its network namespace, /run/netns/wqc-HOST), and the
machine's busy time (/proc/stat).  On exit prints one line:

  wall=S busy=C rabbitmq=C kafka=C postgresql=C workers=C app=C other=C

C in CPU seconds over the window (2 cores: at most 2 x S); "other" is
every process outside the bed's hosts (this script, the run's shell,
anything else on the machine).  A process that ends between samples
loses its last half second at most; one that started after the first
sample counts from 0.

  cpu_split.py [LIMIT]
"""
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
CLASSES = [("rmq", "rabbitmq"), ("kafka", "kafka"), ("pg", "postgresql"),
           ("w", "workers"), ("app", "app")]


def netns_names():
    names = {}
    try:
        for n in os.listdir("/run/netns"):
            if n.startswith("wqc-"):
                names[os.stat("/run/netns/" + n).st_ino] = n[4:]
    except OSError:
        pass
    return names


def host_class(host):
    for prefix, cls in CLASSES:
        if host is not None and host.startswith(prefix):
            return cls
    return "other"


def sample(names):
    """{pid: (class, cpu ticks)} of every process now."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            ino = os.stat("/proc/%s/ns/net" % p).st_ino
            with open("/proc/%s/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields 14, 15 (utime, stime) are rest[11], rest[12]
        out[int(p)] = (host_class(names.get(ino)), int(rest[11]) + int(rest[12]))
    return out


def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]     # all but idle and iowait


def main():
    limit = float(sys.argv[1]) if len(sys.argv) > 1 else 900
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    names = netns_names()
    t0, b0 = time.monotonic(), busy()
    first = sample(names)
    last = dict(first)
    while not stop and time.monotonic() - t0 < limit:
        time.sleep(0.5)
        for pid, v in sample(names).items():
            last[pid] = v
    wall, b1 = time.monotonic() - t0, busy()
    per = {cls: 0 for _, cls in CLASSES}
    per["other"] = 0
    for pid, (cls, ticks) in last.items():
        base = first[pid][1] if pid in first else 0
        per[cls] += max(0, ticks - base)
    print("wall=%.1f busy=%.1f %s" % (wall, (b1 - b0) / TICK,
          " ".join("%s=%.1f" % (k, v / TICK) for k, v in per.items())))


if __name__ == "__main__":
    main()
