#!/bin/sh
# run.sh - runs libFuzzer targets for a while each and reports.
#
#   tests/fuzz/run.sh SECONDS build-fuzz/fuzz_envelope [build-fuzz/fuzz_X ...]
#
# For each target build-fuzz/fuzz_X, the seeds of tests/fuzz/corpus/X are
# copied into a fresh work directory outside the tracked tree (mktemp, or
# under $FUZZ_WORK_DIR), so the committed corpus only changes by hand.
# tests/fuzz/X.dict is used as a dictionary when present.  Sanitizer
# reports, crashes, leaks, timeouts and out-of-memory all fail the target;
# its work directory (log, grown corpus, crash artifacts) is then kept and
# named.  One summary line per target; exit status 0 only if all are
# clean.  tests/fuzz/lsan.supp lists the leaks of libraries (not ours)
# that LeakSanitizer ignores.  FUZZ_MAX_LEN overrides the largest input tried (default 4096).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS TARGET..." >&2
    exit 2
fi
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
maxlen=${FUZZ_MAX_LEN:-4096}
status=0

for bin in "$@"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: FAILED, no executable $bin"
        status=1
        continue
    fi
    base=${FUZZ_WORK_DIR:-${TMPDIR:-/tmp}}
    mkdir -p "$base"
    work=$(mktemp -d "$base/wq-fuzz-$name.XXXXXX") || exit 1
    mkdir "$work/corpus" "$work/artifacts"
    if [ -d "$here/corpus/$name" ]; then
        find "$here/corpus/$name" -maxdepth 1 -type f \
            -exec cp {} "$work/corpus/" \;
    fi
    seeds=$(find "$work/corpus" -type f | wc -l)
    set --          # "$@" now carries the optional -dict flag only
    if [ -f "$here/$name.dict" ]; then
        set -- "-dict=$here/$name.dict"
    fi

    asan="detect_leaks=1:allocator_may_return_null=0"
    ubsan="halt_on_error=1:print_stacktrace=1"
    lsan="suppressions=$here/lsan.supp:print_suppressions=0"
    ASAN_OPTIONS="$asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="$ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    LSAN_OPTIONS="$lsan${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
        "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" \
        >"$work/log" 2>&1
    rc=$?

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" |
        tail -n 1)
    cov=$(sed -n 's/.*[[:space:]]cov: \([0-9]*\).*/\1/p' "$work/log" |
        tail -n 1)
    corpus=$(find "$work/corpus" -type f | wc -l)
    reports=$(grep -c -E \
        'ERROR: (Address|Leak)Sanitizer|ERROR: libFuzzer|runtime error:|^SUMMARY: ' \
        "$work/log")
    artifacts=$(find "$work/artifacts" -type f | wc -l)

    if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ "$artifacts" -eq 0 ]; then
        echo "fuzz $name: ok, ${runs:-?} runs in ${secs}s, corpus" \
            "$seeds -> $corpus, cov ${cov:-?}"
        rm -rf "$work"
    else
        echo "fuzz $name: FAILED (exit $rc, $reports sanitizer/fuzzer" \
            "reports, $artifacts artifacts); kept $work"
        grep -E -A 12 'ERROR:|runtime error:|fuzz_[a-z_]*: ' "$work/log" |
            head -n 40 | sed 's/^/    /'
        status=1
    fi
done
exit $status
