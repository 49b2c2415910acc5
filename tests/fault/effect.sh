#!/bin/sh
# tests/fault/effect.sh MODE - the chaos suite's exec handler: a side
# effect that can be counted.  It appends the task's key ($WORKQ_KEY) as
# one line to $CHAOS_EFFECTS (an O_APPEND write of a short line: whole or
# not at all), then succeeds.  chaos.sh counts each key's lines: a key
# written twice means the effect ran twice for one task.
#
#   effect   append and succeed
#   once     crash (SIGSEGV) on the task's first attempt, then as effect
#   always   crash on every attempt (the task ends dead, no effect)
set -eu
case "${1:-effect}" in
    always) kill -SEGV $$ ;;
    once) [ "$WORKQ_ATTEMPT" -gt 1 ] || kill -SEGV $$ ;;
    effect) ;;
    *) echo "effect.sh: unknown mode $1" >&2; exit 65 ;;
esac
printf '%s\n' "$WORKQ_KEY" >> "$CHAOS_EFFECTS"
