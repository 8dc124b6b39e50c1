#!/bin/sh
# run.sh — runs the libFuzzer targets built by `make fuzz-build`.
#
#   sh tests/fuzz/run.sh FUZZ_B SECONDS JOBS TARGET...
#
# Each target FUZZ_B/fuzz_TARGET runs SECONDS seconds, JOBS targets at a
# time, on FUZZ_B/corpus/TARGET (new inputs land there, so coverage grows
# from run to run) plus the seed corpus tests/fuzz/corpus/TARGET (read only),
# with tests/fuzz/TARGET.dict when it exists. Prints each target's final
# stats line; exits 1 when any target found a crash, a leak, a timeout or
# broke an invariant, printing the end of its log and the reproducer's path
# (run FUZZ_B/fuzz_TARGET FILE to replay it).
set -u
[ $# -ge 4 ] || { echo "usage: $0 FUZZ_B SECONDS JOBS TARGET..." >&2; exit 64; }
B=$1 SECONDS_EACH=$2 JOBS=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$B/logs" "$B/artifacts"

maxlen() {
    case $1 in
    address) echo 2048 ;;
    *) echo 8192 ;;
    esac
}

run_one() {
    t=$1
    mkdir -p "$B/corpus/$t"
    dict=""
    [ -f "$HERE/$t.dict" ] && dict="-dict=$HERE/$t.dict"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: two run at once.
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(maxlen "$t")" -print_final_stats=1 $dict \
        -artifact_prefix="$B/artifacts/$t-" "$B/corpus/$t" "$HERE/corpus/$t" \
        >"$B/logs/$t.log" 2>&1
    echo $? >"$B/logs/$t.rc"
}

# JOBS at a time: start a batch in the background, wait for all of it.
set -- "$@"
while [ $# -gt 0 ]; do
    n=0
    while [ $# -gt 0 ] && [ $n -lt "$JOBS" ]; do
        run_one "$1" &
        n=$((n + 1))
        shift
    done
    wait
done

fail=0
for log in "$B"/logs/*.log; do
    t=$(basename "$log" .log)
    [ -f "$B/logs/$t.rc" ] || continue
    rc=$(cat "$B/logs/$t.rc")
    rm -f "$B/logs/$t.rc"
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    runs=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
    if [ "$rc" = 0 ] && [ -n "$stats" ]; then
        echo "fuzz $t: ok: $stats; $runs"
    else
        fail=1
        echo "fuzz $t: FAILED (exit $rc); log $log:"
        tail -n 60 "$log" | sed 's/^/    /'
        grep -E 'Test unit written to' "$log" | sed 's/^/    /'
    fi
done
exit $fail
