#!/bin/sh
# tests/run.sh KIND BINARY[:CASE,CASE]... - runs test binaries one after
# another (only the named cases when given) and
# prints one closing line for the whole kind: "KIND: N passed, M failed".
# Exits non-zero if any test failed or if no test ran at all.
kind=$1; shift
passed=0; failed=0; broken=""
[ $# -gt 0 ] || { echo "$kind: no test binaries" >&2; exit 1; }
for arg in "$@"; do
    t=${arg%%:*}
    started=$(date +%s)
    if [ "$t" = "$arg" ]; then
        out=$("$t" 2>&1); rc=$?
    else
        # BINARY:CASE,CASE runs only the cases whose names contain one
        # of the CASE substrings (make tsan).
        cases=$(echo "${arg#*:}" | tr ',' ' ')
        # shellcheck disable=SC2086
        out=$("$t" $cases 2>&1); rc=$?
    fi
    printf '%s\n' "$out"
    # where make check's time goes (CI prints it; sort -k3n to rank)
    echo "time: ${t##*/} $(( $(date +%s) - started )) s"
    line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9-]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        broken="$broken $t"; failed=$((failed + 1)); continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || { broken="$broken $t"; failed=$((failed + 1)); }
done
[ -z "$broken" ] || echo "$kind: binaries that exited abnormally:$broken" >&2
echo "$kind: $passed passed, $failed failed"
[ -z "${WQ_TEST_SUMMARY:-}" ] || echo "$passed $failed" >> "$WQ_TEST_SUMMARY"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
