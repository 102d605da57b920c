#!/usr/bin/env bash
# The soak of issue 11: builds streetgate and the soak driver (release), then runs the driver,
# which generates the 1M-work snapshot, starts `streetgate serve` on loopback and drives it for
# a bounded time under snapshot swaps, SIGHUPs, JWKS rotations and a faulty upstream; half-way
# it drops an emptied snapshot that the snapshot guard must refuse (--emptied-at to move it).
#
#   benches/soak/run.sh                      # 10 minutes (about 11 with the build and setup)
#   benches/soak/run.sh --duration 60s       # a quick run
#   benches/soak/run.sh --help               # every knob of the driver (examples/soak.rs)
#
# Environment: SKIP_BUILD=1 to use the binaries in target/release as they are; REPORT=FILE to
# keep a copy of the output (default: target/soak/report-<time>.txt).
# Exit status: the driver's (0 pass; 1 wrong answers, RSS/fds not flat or a stressor missing;
# 2 error; 130/143 interrupted). Nothing is left running: the driver kills streetgate on every
# exit path, and this script checks the pid the driver recorded.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$ROOT/target/release/streetgate
DRIVER=$ROOT/target/release/examples/soak
mkdir -p "$ROOT/target/soak"
PID_FILE=$(mktemp "$ROOT/target/soak/streetgate.pid.XXXXXX")
REPORT=${REPORT:-$ROOT/target/soak/report-$(date -u +%Y%m%dT%H%M%SZ).txt}

cleanup() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    # Only our child: the pid must still be a streetgate started with the soak config.
    if [[ -n $pid ]] && grep -qs streetgate "/proc/$pid/cmdline" && kill -0 "$pid" 2>/dev/null; then
        echo "soak: streetgate $pid still running; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "== building streetgate and the soak driver (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet --bin streetgate --example soak)
fi

echo "== $(date -u +%FT%TZ) streetgate $(git -C "$ROOT" rev-parse --short HEAD)," \
    "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)" |
    tee "$REPORT" >&2
set +e
# The sidecar runs with the malloc settings the image sets (Dockerfile).
# SOAK_GLIBC_DEFAULT=1 runs it with glibc's defaults instead.
IMAGE_ENV=(--sidecar-env MALLOC_ARENA_MAX=2 --sidecar-env MALLOC_MMAP_THRESHOLD_=131072)
[[ -n ${SOAK_GLIBC_DEFAULT:-} ]] && IMAGE_ENV=()
"$DRIVER" --bin "$BIN" --pid-file "$PID_FILE" "${IMAGE_ENV[@]}" "$@" 2>&1 | tee -a "$REPORT"
status=${PIPESTATUS[0]}
set -e
echo "== report kept in $REPORT (exit $status)" >&2
exit "$status"
