#!/usr/bin/env python3
"""tests/cluster/fault_times.py - how long each fault of a cluster chaos
run (tests/cluster/chaos.sh) held producers and workers up.

    fault_times.py FAULTS SAMPLES OUTCOMES START_MS END_MS

FAULTS    lines "ms<TAB>track<TAB>fault<TAB>n<TAB>target<TAB>phase", phase
          inject, repair (node started, link back, loss off, standby
          promoted, worker started again) or settled
SAMPLES   lines "ms count": the submitter's accepted count, every 0.2 s
OUTCOMES  lines "ms host": each outcome a worker recorded (PostgreSQL's
          clock, the same as ours), host = w1, w2 (lease expiries that
          the scheduler records are not in it)
START_MS, END_MS  when the submitter started and stopped making tasks

For each injected fault it prints (seconds):
  at       the injection, counted from START_MS
  held     injection to repair
  P-first  injection to the first task the submitter had confirmed after
           it (resolution 0.2 s, the sampling step)
  P-stall  the longest time without a newly confirmed task, from the
           injection to the next fault of the same track (or END_MS)
  W-first  broker and PostgreSQL faults: injection to the first outcome
           any worker recorded after it; worker-host faults: repair to
           the first outcome the host's own worker recorded after it
  P-back   injection to the end of that longest stall: when producers
           had tasks accepted again after the fault (the figure to read
           when P-first caught a confirmation still under way); "-" when
           the stall was under 1 s
  W-stall  the longest time without any recorded outcome (all workers)
           in the same window as P-stall
  W-back   injection to the end of that stall: when workers recorded
           outcomes again; "-" when the stall was under 1 s
then, per kind of fault, the count and the largest of each figure.
"""
import sys

# A stall shorter than this is the sampling step or the batching, not an
# outage: no P-back or W-back is printed for it.
STALL_MS = 1000


def longest_gap(times, a, b):
    """Longest interval in [a, b] containing none of the sorted times,
    and when it ended (counted from a)."""
    last = a
    best = 0
    best_end = 0
    for t in times:
        if t <= a:
            continue
        if t > b:
            break
        if t - last > best:
            best, best_end = t - last, t - a
        last = t
    if b - last > best:
        best, best_end = b - last, b - a
    return best, best_end


def first_after(times, a):
    for t in times:
        if t > a:
            return t
    return None


def fmt(ms):
    return "-" if ms is None else "%.1f" % (ms / 1000.0)


def main():
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        return 2
    faults_path, samples_path, outcomes_path = sys.argv[1:4]
    start, end = int(sys.argv[4]), int(sys.argv[5])

    events = []
    with open(faults_path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 6:
                events.append((int(p[0]), p[1], p[2], int(p[3]), p[4], p[5]))
    # times at which the accepted count grew
    accepted = []
    prev = None
    with open(samples_path) as f:
        for line in f:
            p = line.split()
            if len(p) != 2:
                continue
            t, n = int(p[0]), int(p[1])
            if prev is not None and n > prev:
                accepted.append(t)
            prev = n
    outcomes = []
    by_host = {}
    with open(outcomes_path) as f:
        for line in f:
            p = line.split()
            if len(p) != 2:
                continue
            t = int(p[0])
            outcomes.append(t)
            by_host.setdefault(p[1], []).append(t)
    outcomes.sort()
    for v in by_host.values():
        v.sort()

    injects = [e for e in events if e[5] == "inject"]
    rows = []
    for e in injects:
        t0, track, fault, n, target, _ = e
        repair = next((x[0] for x in events if x[2] == fault and x[3] == n
                       and x[5] == "repair"), None)
        nxt = next((x[0] for x in injects if x[1] == track and x[0] > t0), None)
        b = min(nxt if nxt is not None else end, end)
        if b <= t0:
            b = t0 + 1
        p_first = first_after(accepted, t0)
        p_first = None if p_first is None else p_first - t0
        p_stall, p_back = longest_gap(accepted, t0, b)
        if p_stall < STALL_MS:
            p_back = None
        if fault.startswith("worker-"):
            w_from = repair if repair is not None else t0
            w = first_after(by_host.get(target, []), w_from)
        else:
            w_from = t0
            w = first_after(outcomes, t0)
        w_first = None if w is None else w - w_from
        w_stall, w_back = longest_gap(outcomes, t0, b)
        if w_stall < STALL_MS:
            w_back = None
        rows.append((fault, n, target, t0 - start,
                     None if repair is None else repair - t0,
                     p_first, p_stall, w_first, w_stall, p_back, w_back))

    print("%-12s %3s %-7s %7s %6s %7s %7s %7s %7s %7s %7s" % (
        "fault", "#", "target", "at s", "held", "P-first", "P-stall",
        "P-back", "W-first", "W-stall", "W-back"))
    for r in rows:
        print("%-12s %3d %-7s %7s %6s %7s %7s %7s %7s %7s %7s" % (
            r[0], r[1], r[2], fmt(r[3]), fmt(r[4]), fmt(r[5]), fmt(r[6]),
            fmt(r[9]), fmt(r[7]), fmt(r[8]), fmt(r[10])))
    print()
    print("per kind (largest of each; times in s):")
    print("%-12s %5s %7s %7s %7s %7s %7s %7s" % (
        "fault", "count", "P-first", "P-stall", "P-back", "W-first",
        "W-stall", "W-back"))
    order = []
    for r in rows:
        if r[0] not in order:
            order.append(r[0])

    def mx(vals):
        vals = [v for v in vals if v is not None]
        return max(vals) if vals else None
    for k in order:
        rs = [r for r in rows if r[0] == k]
        print("%-12s %5d %7s %7s %7s %7s %7s %7s" % (
            k, len(rs), fmt(mx(r[5] for r in rs)), fmt(mx(r[6] for r in rs)),
            fmt(mx(r[9] for r in rs)), fmt(mx(r[7] for r in rs)),
            fmt(mx(r[8] for r in rs)), fmt(mx(r[10] for r in rs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
