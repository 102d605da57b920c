#!/usr/bin/env bash
# Load comparison of streetgate against the proxies a platform team would otherwise deploy, in
# one run on this machine, plus latency while grants snapshots are swapped and idle memory.
#
#   benches/load/run.sh [compare|swap|deltas|rss|all|ab|profile|syscalls]
#                       (default: all; deltas, ab, profile and syscalls only when named)
#
# compare  one fixed upstream (nginx, 1 worker, small JSON body); for each worker count in PAIRS
#          (fair pairings: nginx worker_processes P, haproxy nbthread P, streetgate
#          runtime.workers P, the bare ceiling proxy with P threads), in turns, repeated ROUNDS
#          times so drift shows: direct to the upstream, nginx pass-through, haproxy
#          pass-through, haproxy verifying the RS256 JWT (jwt_verify + alg/iss/aud/exp), the
#          bare hyper ceiling proxy (../shared/perf-ceiling, tpc + conn), streetgate with the
#          Street Manager routing config, a token-cached RS256 token and a realistic snapshot,
#          on a route that needs a workstream grant, every decision logged, once with hyper's
#          HTTP/1 server (streetgate) and once with the native one (sg_native). Every response must
#          be a 200. CPU µs per request (user + system, from /proc/<pid>/stat of the proxy and
#          its children) is printed for every proxy: it is the figure other load disturbs least.
# swap     streetgate's latency with a 1M-work snapshot, without swaps and while a new version
#          of it is written every second (file source, short poll interval), in turns.
# deltas   streetgate's latency with a DELTA_WORKS snapshot from a URL source with long-poll,
#          steady against while 1,000-change deltas arrive at 1 Hz, in turns. The source is
#          examples/delta_source (deltas prepared and checked before the run, so it costs almost
#          no CPU during it), not `streetgate publish`, which would validate every version on
#          the same two cores and measure itself.
# ab       two streetgate builds side by side (BIN_A, BIN_B; default BIN_A=$BIN; HTTP1_A, HTTP1_B
#          pick each one's HTTP/1 server, hyper by default: BIN_B=$BIN HTTP1_B=native), 1 worker each
#          (STREETGATE_WORKERS), same config, snapshot and token, in A B A B turns: the way each
#          trim is measured. Prints CPU µs per request and req/s for each, and B / A.
# profile  streetgate (BIN, 1 worker) under wrk, sampled by `perf record` (cpu-clock) for
#          DURATION; the report goes to $DIR/perf.txt (KEEP=1 to keep it and perf.data) and its
#          top lines out. CALLGRAPH=dwarf for callers (release builds have no frame pointers).
#          PERF_EVENT=probe_libc:clock_gettime (after `perf probe -x <libc> -a clock_gettime`;
#          or malloc) records every call over one wrk run instead and prints calls per request.
# syscalls system calls per request: streetgate with hyper's HTTP/1, with the native one, and
#          haproxy (perf stat over DURATION).
# rss      streetgate's resident memory at idle (demo config if `streetgate demo` runs, else
#          the load config without a grants snapshot).
#
# Knobs (environment): THREADS=1 CONNS=32 DURATION=10s ROUNDS=2 PAIRS="1 2" WORKERS=$(nproc) (swap)
# CEILING_SRC=../shared/perf-ceiling
# WORKS=100000 USERS=10000 SWAP_WORKS=1000000 DELTA_WORKS=1000000 DELTA_USERS=100000
# SKIP_BUILD=1 SHIPPED_CONFIG=1|0 KEEP=1 CLOSE=1 (a new connection per request).
# Needs wrk, nginx, haproxy (installed with apt-get when missing and running as root), cargo.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-all}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-$(nproc)}
PAIRS=${PAIRS:-1 2}
CLK_TCK=$(getconf CLK_TCK)
CEILING_SRC=${CEILING_SRC:-$ROOT/../shared/perf-ceiling}
CEILING_BIN=$ROOT/target/ceiling/release/ceiling
ORGS=${ORGS:-200}
WORKS=${WORKS:-100000}
USERS=${USERS:-10000}
SWAP_WORKS=${SWAP_WORKS:-1000000}
SWAP_USERS=${SWAP_USERS:-100000}
DELTA_WORKS=${DELTA_WORKS:-1000000}
DELTA_USERS=${DELTA_USERS:-100000}
ISSUER=https://auth.bench.invalid/
AUDIENCE=street-manager
KEYS=$ROOT/tests/fixtures/keys
# user-0 is a Planner of promoter 0000 with read-only on workstream 004; synthetic work 100 is
# promoter 0000's, workstream 004 (src/grants/synthetic.rs): a workstream grant allows it.
PATH_ALLOWED=/work/works/SW00000000100
# With 10,000 organisations (5,000 promoters) promoter 0000's works are every 5,000th; 10000
# is also workstream 004.
DELTA_PATH=/work/works/SW00000010000

BIN=${BIN:-$ROOT/target/release/streetgate}
FIXTURE=$ROOT/target/release/examples/bench_fixture
DELTA_SOURCE=$ROOT/target/release/examples/delta_source
DIR=$(mktemp -d /tmp/streetgate-load.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -z ${KEEP:-} ]]; then rm -rf "$DIR"; else echo "kept $DIR"; fi
}
trap cleanup EXIT

log() { echo "== $*" >&2; }

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    export PATH=$PATH:/usr/sbin
}

build() {
    [[ -n ${SKIP_BUILD:-} ]] && return
    log "building streetgate and the fixture tool (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin streetgate --example bench_fixture \
        --example delta_source)
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# fill TEMPLATE OUT KEY=VALUE...: replaces @KEY@ with VALUE.
fill() {
    local template=$1 out=$2
    shift 2
    local args=()
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$template" >"$out"
}

wait_http() { # URL [seconds]
    local url=$1 tries=$((${2:-60} * 10))
    for ((i = 0; i < tries; i++)); do
        curl -sf -o /dev/null "$url" && return 0
        sleep 0.1
    done
    log "timed out waiting for $url"
    return 1
}

wait_port() { # PORT
    for ((i = 0; i < 100; i++)); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listening on $1"
    return 1
}

start() { # NAME CMD...: runs CMD in the background, output in $DIR/NAME.log; pid in LAST_PID
    local name=$1
    shift
    "$@" >"$DIR/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

start_upstream() {
    UPSTREAM_PORT=$(free_port)
    fill "$HERE/upstream.nginx.conf" "$DIR/upstream.conf" WORKERS=1 DIR="$DIR" PORT="$UPSTREAM_PORT"
    start upstream nginx -c "$DIR/upstream.conf" -e "$DIR/upstream.error.log"
    wait_port "$UPSTREAM_PORT"
}

# The routing config: the shipped Street Manager config with its upstreams, keys, grants file
# and addresses pointed at this run, or the one-route config beside this script.
streetgate_config() { # OUT PORT ADMIN_PORT GRANTS POLL
    local out=$1 port=$2 admin=$3 grants=$4 poll=$5
    local shipped=$ROOT/config/streetmanager.yaml
    if [[ ${SHIPPED_CONFIG:-1} == 1 && -f $shipped ]]; then
        python3 - "$shipped" "$out" "$port" "$admin" "$grants" "$poll" "$UPSTREAM_PORT" \
            "$KEYS/jwks.json" "$ISSUER" "$AUDIENCE" <<'PY'
import re, sys
src, out, port, admin, grants, poll, up, jwks, iss, aud = sys.argv[1:]
text = open(src).read()
text = re.sub(r"(?m)^listen:\n  addr: \S+", f"listen:\n  addr: 127.0.0.1:{port}", text)
text = re.sub(r"(?m)^admin:\n  addr: \S+", f"admin:\n  addr: 127.0.0.1:{admin}", text)
text = re.sub(r"(?m)^  jwks:.*\n(    .*\n)*", f"  jwks:\n    file: {jwks}\n", text)
text = re.sub(r"(?m)^  issuer: .*", f"  issuer: {iss}", text)
text = re.sub(r"(?m)^  audience: .*", f"  audience: {aud}", text)
grants_source = re.compile(r"(?m)^(grants:\n  source:\n    file:\n      path: ).*\n(      poll_interval: ).*")
text, n = grants_source.subn(rf"\g<1>{grants}\n\g<2>{poll}", text)
assert n == 1, "grants file source not found in the shipped config"
text = re.sub(r"(?m)^(\s+upstream:) http://127\.0\.0\.1:\d+", rf"\1 http://127.0.0.1:{up}", text)
open(out, "w").write(text)
PY
        log "routing config: config/streetmanager.yaml ($(grep -c '  - id:' "$out") routes)"
    else
        fill "$HERE/streetgate.yaml" "$out" PORT="$port" ADMIN_PORT="$admin" JWKS="$KEYS/jwks.json" \
            ISSUER="$ISSUER" AUDIENCE="$AUDIENCE" GRANTS="$grants" POLL="$poll" \
            UPSTREAM_PORT="$UPSTREAM_PORT"
        log "routing config: benches/load/streetgate.yaml (config/streetmanager.yaml not found)"
    fi
    "$BIN" check-config "$out" >&2
}

start_streetgate() { # CONFIG ADMIN_PORT: waits until ready (STREETGATE_WORKERS passes through)
    start streetgate env RUST_LOG="${SG_LOG:-info}" STREETGATE_WORKERS="${STREETGATE_WORKERS:-$WORKERS}" \
        STREETGATE_HTTP1="${STREETGATE_HTTP1:-hyper}" "$BIN" serve -c "$1"
    SG_PID=$LAST_PID
    wait_http "http://127.0.0.1:$2/readyz" 120
}

token() {
    "$FIXTURE" token --key "$KEYS/rsa1.pem" --kid rsa1 --sub user-0 --org 0000 --roles Planner \
        --issuer "$ISSUER" --audience "$AUDIENCE"
}

# cpu_ticks PID: user + system clock ticks of PID and its children (nginx and haproxy workers).
cpu_ticks() {
    local total=0 p t
    for p in "$1" $(pgrep -P "$1" || true); do
        # Fields after the command name (which may hold spaces): utime and stime are 12th, 13th.
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# bench NAME URL [PID]: one wrk turn; prints "NAME rps p50 p99 cpu_us_per_request" (cpu "-"
# without a PID) and fails on any non-200 answer.
bench() {
    local name=$1 url=$2 pid=${3:-} out before=0 after=0
    [[ -n $pid ]] && before=$(cpu_ticks "$pid")
    local close=()
    # CLOSE=1: one request per connection (what connection set-up costs).
    [[ -n ${CLOSE:-} ]] && close=(-H "Connection: close")
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s "${close[@]}" \
        -H "Authorization: Bearer $TOKEN" -s "$HERE/report.lua" "$url")
    [[ -n $pid ]] && after=$(cpu_ticks "$pid")
    echo "$out" >>"$DIR/wrk.log"
    local line
    line=$(grep '^RESULT' <<<"$out")
    eval "$(sed 's/^RESULT //' <<<"$line" | tr ' ' '\n' | sed 's/^/local w_/')"
    if ((w_non2xx + w_connect + w_read + w_write + w_timeout > 0)); then
        log "$name: $w_non2xx non-2xx answers, socket errors c=$w_connect r=$w_read w=$w_write t=$w_timeout"
        echo "FAIL $name"
        return 1
    fi
    local cpu=-
    if [[ -n $pid ]]; then
        cpu=$(python3 -c "print(f'{($after - $before) * 1e6 / $CLK_TCK / max($w_requests, 1):.1f}')")
    fi
    echo "$name $w_rps $w_p50 $w_p99 $cpu"
}

check_200() { # NAME URL
    local code
    code=$(curl -s -o "$DIR/check.body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$2")
    if [[ $code != 200 ]]; then
        log "$1 answered $code: $(cat "$DIR/check.body")"
        return 1
    fi
}

build_ceiling() {
    [[ -f $CEILING_SRC/Cargo.toml ]] || { log "no ceiling proxy at $CEILING_SRC: skipped"; return 1; }
    [[ -n ${SKIP_BUILD:-} && -x $CEILING_BIN ]] && return 0
    log "building the ceiling proxy (release)"
    cargo build --release --quiet --manifest-path "$CEILING_SRC/Cargo.toml" \
        --target-dir "$ROOT/target/ceiling"
}

# One pairing: every proxy with P workers (nginx worker_processes, haproxy nbthread,
# streetgate runtime.workers, the ceiling's threads), measured in turns.
compare_pairing() { # P RESULTS
    local p=$1 results=$2 pids=()
    local nginx_port haproxy_port jwt_port sg_port sg_admin ceiling_port
    nginx_port=$(free_port) haproxy_port=$(free_port) jwt_port=$(free_port)
    sg_port=$(free_port) sg_admin=$(free_port) ceiling_port=$(free_port)
    fill "$HERE/proxy.nginx.conf" "$DIR/nginx.conf" WORKERS="$p" DIR="$DIR" PORT="$nginx_port" \
        UPSTREAM_PORT="$UPSTREAM_PORT"
    start nginx nginx -c "$DIR/nginx.conf" -e "$DIR/nginx.error.log"
    local nginx_pid=$LAST_PID
    fill "$HERE/haproxy.cfg" "$DIR/haproxy.cfg" WORKERS="$p" PORT="$haproxy_port" \
        JWT_PORT="$jwt_port" UPSTREAM_PORT="$UPSTREAM_PORT" PUBKEY="$KEYS/rsa1.pub.pem" \
        ISSUER="$ISSUER" AUDIENCE="$AUDIENCE"
    start haproxy haproxy -W -db -f "$DIR/haproxy.cfg"
    local haproxy_pid=$LAST_PID
    streetgate_config "$DIR/streetgate.yaml" "$sg_port" "$sg_admin" "$DIR/grants.json" 10s
    STREETGATE_WORKERS=$p start_streetgate "$DIR/streetgate.yaml" "$sg_admin"
    local sg_pid=$SG_PID
    # The same build and config with the native HTTP/1 server (runtime.http1: native).
    local native_port native_admin
    native_port=$(free_port) native_admin=$(free_port)
    streetgate_config "$DIR/native.yaml" "$native_port" "$native_admin" "$DIR/grants.json" 10s
    STREETGATE_HTTP1=native STREETGATE_WORKERS=$p start_streetgate "$DIR/native.yaml" "$native_admin"
    local native_pid=$SG_PID
    local -A url=(
        [direct]="http://127.0.0.1:$UPSTREAM_PORT$PATH_ALLOWED"
        [nginx]="http://127.0.0.1:$nginx_port$PATH_ALLOWED"
        [haproxy]="http://127.0.0.1:$haproxy_port$PATH_ALLOWED"
        [haproxy_jwt]="http://127.0.0.1:$jwt_port$PATH_ALLOWED"
        [streetgate]="http://127.0.0.1:$sg_port$PATH_ALLOWED"
        [sg_native]="http://127.0.0.1:$native_port$PATH_ALLOWED"
    )
    local -A pid=([direct]="" [nginx]=$nginx_pid [haproxy]=$haproxy_pid [haproxy_jwt]=$haproxy_pid
        [streetgate]=$sg_pid [sg_native]=$native_pid)
    local order=(direct nginx haproxy haproxy_jwt streetgate sg_native)
    if [[ -n $HAVE_CEILING ]]; then
        start ceiling "$CEILING_BIN" "127.0.0.1:$ceiling_port" "127.0.0.1:$UPSTREAM_PORT" tpc conn "$p"
        url[ceiling]="http://127.0.0.1:$ceiling_port$PATH_ALLOWED"
        pid[ceiling]=$LAST_PID
        order=(direct nginx haproxy haproxy_jwt ceiling streetgate sg_native)
    fi
    for name in "${order[@]}"; do
        local port=${url[$name]#http://127.0.0.1:}
        wait_port "${port%%/*}"
        check_200 "$name" "${url[$name]}"
    done
    # The same token with a bad signature must not get through the verifying proxies. A
    # character well inside the signature changes: the last one may only carry padding bits.
    local at=$((${#TOKEN} - 10)) swap=A
    [[ ${TOKEN:at:1} == A ]] && swap=B
    local forged=${TOKEN:0:at}$swap${TOKEN:at+1}
    for name in haproxy_jwt streetgate sg_native; do
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $forged" "${url[$name]}")
        [[ $code == 401 ]] || { log "$name let a forged token through ($code)"; return 1; }
    done

    log "$p worker(s): warm-up"
    for name in "${order[@]}"; do
        wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "${url[$name]}" >/dev/null
    done
    log "$p worker(s): wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds"
    for ((round = 1; round <= ROUNDS; round++)); do
        for name in "${order[@]}"; do
            local r
            r=$(bench "$name" "${url[$name]}" "${pid[$name]}") || return 1
            echo "$p $round $r" | tee -a "$results" >&2
        done
    done
    local rss
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$sg_pid/status")
    echo "streetgate ($p workers) RSS after the run: $((rss / 1024)) MiB"
    for name in nginx haproxy streetgate sg_native ceiling; do
        [[ -n ${pid[$name]:-} ]] && kill "${pid[$name]}" 2>/dev/null || true
    done
    wait "${pid[nginx]}" "${pid[haproxy]}" "${pid[streetgate]}" "${pid[sg_native]}" ${pid[ceiling]:-} 2>/dev/null || true
}

compare() {
    start_upstream
    HAVE_CEILING=
    build_ceiling && HAVE_CEILING=1
    log "snapshot: $WORKS works, $USERS users, $ORGS organisations"
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs "$ORGS" --users "$USERS" --works "$WORKS"
    TOKEN=$(token)
    local results=$DIR/compare.txt
    : >"$results"
    for p in $PAIRS; do
        compare_pairing "$p" "$results" || return 1
    done
    summarise "$results"
}

summarise() { # FILE of "workers round name rps p50 p99 cpu_us"
    python3 - "$1" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
pairs = list(dict.fromkeys(r[0] for r in rows))
names = list(dict.fromkeys(r[2] for r in rows))
num = lambda v: None if v == "-" else float(v)
get = {(r[0], int(r[1]), r[2]): (float(r[3]), int(r[4]), int(r[5]), num(r[6])) for r in rows}
fmt = lambda v, f: "-" if v is None else format(v, f)
for p in pairs:
    rounds = sorted({int(r[1]) for r in rows if r[0] == p})
    print()
    print(f"== {p} worker(s) each: CPU µs per request is the primary figure (least disturbed by other load)")
    print(f"{'round':>5} {'target':<12} {'CPU µs/req':>10} {'req/s':>8} {'p50 µs':>7} {'p99 µs':>7}")
    for r in rounds:
        for n in names:
            if (p, r, n) not in get:
                continue
            rps, p50, p99, cpu = get[(p, r, n)]
            print(f"{r:>5} {n:<12} {fmt(cpu, '>10.1f'):>10} {rps:>8.0f} {p50:>7} {p99:>7}")
    for subject in ("streetgate", "sg_native"):
        if (p, rounds[0], subject) not in get:
            continue
        print(f"{subject} / target, mean of per-round ratios (CPU <1, req/s >1, p99 <1 favour {subject})")
        print(f"{'vs':<12} {'CPU/req':>8} {'req/s':>8} {'p99':>8}   per round req/s")
        for n in names:
            if n == subject or (p, rounds[0], n) not in get:
                continue
            tput = [get[(p, r, subject)][0] / get[(p, r, n)][0] for r in rounds]
            p99 = [get[(p, r, subject)][2] / get[(p, r, n)][2] for r in rounds]
            cpus = [get[(p, r, subject)][3] / get[(p, r, n)][3] for r in rounds
                    if get[(p, r, n)][3]]
            cpu = f"{st.mean(cpus):.2f}x" if cpus else "-"
            per = " ".join(f"{t:.2f}x" for t in tput)
            print(f"{n:<12} {cpu:>8} {st.mean(tput):>7.2f}x {st.mean(p99):>7.2f}x   {per}")
PY
}

swap() {
    start_upstream
    local sg_port sg_admin
    sg_port=$(free_port) sg_admin=$(free_port)
    log "snapshot: $SWAP_WORKS works, $SWAP_USERS users"
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs "$ORGS" --users "$SWAP_USERS" --works "$SWAP_WORKS"
    streetgate_config "$DIR/streetgate.yaml" "$sg_port" "$sg_admin" "$DIR/grants.json" 100ms
    start_streetgate "$DIR/streetgate.yaml" "$sg_admin"
    TOKEN=$(token)
    local url="http://127.0.0.1:$sg_port$PATH_ALLOWED"
    check_200 streetgate "$url"
    wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null

    local secs=${DURATION%s} results=$DIR/swap.txt version=1
    : >"$results"
    for ((round = 1; round <= ROUNDS; round++)); do
        local r
        r=$(bench steady "$url") || return 1
        echo "$round $r" | tee -a "$results" >&2
        local before after
        before=$(snapshot_version "$sg_admin")
        start swapper "$FIXTURE" swap "$DIR/grants.json" --orgs "$ORGS" --users "$SWAP_USERS" \
            --works "$SWAP_WORKS" --every 1s --count "$((secs + 1))" --from-version "$((version + 1))"
        version=$((version + secs + 1))
        r=$(bench swapping "$url") || return 1
        after=$(snapshot_version "$sg_admin")
        echo "$round $r" | tee -a "$results" >&2
        echo "round $round: snapshot version $before -> $after during the swapping turn" >&2
        wait_swapper_and_settle "$sg_admin" "$version"
    done
    summarise_swap "$results"
}

snapshot_version() { # ADMIN_PORT
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^streetgate_snapshot_version / {print $2}'
}

wait_swapper_and_settle() { # ADMIN_PORT LAST_VERSION: let the last write be applied
    for ((i = 0; i < 300; i++)); do
        [[ $(snapshot_version "$1") == "$2" ]] && return 0
        sleep 0.1
    done
    log "last snapshot version $2 not applied yet ($(snapshot_version "$1")); continuing"
}

summarise_swap() { # FILE [TURN]: "round turn rps p50 p99 [cpu]" rows, steady against TURN
    python3 - "$1" "${2:-swapping}" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
turn = sys.argv[2]
print()
print(f"{'round':>5} {'turn':<10} {'req/s':>8} {'p50 µs':>7} {'p99 µs':>7} {'CPU µs/req':>10}")
for r in rows:
    cpu = r[5] if len(r) > 5 else "-"
    print(f"{r[0]:>5} {r[1]:<10} {float(r[2]):>8.0f} {r[3]:>7} {r[4]:>7} {cpu:>10}")
steady = {r[0]: int(r[4]) for r in rows if r[1] == "steady"}
other = {r[0]: int(r[4]) for r in rows if r[1] == turn}
ratios = [other[k] / steady[k] for k in steady]
print(f"p99 {turn} / p99 steady: " + ", ".join(f"{x:.2f}x" for x in ratios)
      + f" (mean {st.mean(ratios):.2f}x)")
PY
}

deltas() {
    start_upstream
    local sg_port sg_admin src_port
    sg_port=$(free_port) sg_admin=$(free_port) src_port=$(free_port)
    log "snapshot: $DELTA_WORKS works, $DELTA_USERS users, 10000 organisations (the deltas name them)"
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs 10000 --users "$DELTA_USERS" --works "$DELTA_WORKS"
    local secs=${DURATION%s}
    start source "$DELTA_SOURCE" "$DIR/grants.json" --works "$DELTA_WORKS" --users "$DELTA_USERS" \
        --addr "127.0.0.1:$src_port" --deltas "$((ROUNDS * (secs + 2)))" --every 1s \
        --keep-sub user-0 --keep-work "${DELTA_PATH##*/}"
    wait_http "http://127.0.0.1:$src_port/stats" 300
    streetgate_config "$DIR/streetgate.yaml" "$sg_port" "$sg_admin" "$DIR/grants.json" 10s
    # The same config with the file source replaced by the long-polled URL source.
    python3 - "$DIR/streetgate.yaml" "http://127.0.0.1:$src_port/grants" <<'PY'
import re, sys
path, url = sys.argv[1:]
text = open(path).read()
text, n = re.subn(r"(?m)^  source:\n(    .*\n)+",
                  f"  source:\n    url: {{url: {url}, poll_interval: 10s, long_poll: 30s}}\n", text)
assert n == 1, "grants source not found"
open(path, "w").write(text)
PY
    "$BIN" check-config "$DIR/streetgate.yaml" >&2
    start_streetgate "$DIR/streetgate.yaml" "$sg_admin"
    TOKEN=$(token)
    local url="http://127.0.0.1:$sg_port$DELTA_PATH"
    check_200 streetgate "$url"
    wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null

    local results=$DIR/deltas.txt version=1
    : >"$results"
    for ((round = 1; round <= ROUNDS; round++)); do
        local r before after
        r=$(bench steady "$url" "$SG_PID") || return 1
        echo "$round $r" | tee -a "$results" >&2
        before=$(snapshot_version "$sg_admin")
        curl -sf -X POST "http://127.0.0.1:$src_port/run?count=$((secs + 1))" >/dev/null
        version=$((version + secs + 1))
        r=$(bench deltas "$url" "$SG_PID") || return 1
        after=$(snapshot_version "$sg_admin")
        echo "$round $r" | tee -a "$results" >&2
        echo "round $round: snapshot version $before -> $after during the deltas turn;" \
            "source (version full_fetches delta_answers): $(curl -s "http://127.0.0.1:$src_port/stats")" >&2
        wait_swapper_and_settle "$sg_admin" "$version"
    done
    curl -s "http://127.0.0.1:$sg_admin/metrics" | grep -E '^streetgate_snapshot_(delta|fetch)_total' >&2 || true
    summarise_swap "$results" deltas
}

# ab: BIN_A against BIN_B with the same config, in turns. A fair A/B of one change.
ab() {
    local a=${BIN_A:-$BIN} b=${BIN_B:?BIN_B: the streetgate binary to compare with BIN_A}
    start_upstream
    log "snapshot: $WORKS works, $USERS users, $ORGS organisations"
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs "$ORGS" --users "$USERS" --works "$WORKS"
    TOKEN=$(token)
    local results=$DIR/ab.txt name bin port admin
    : >"$results"
    local -A url pid
    for name in A B; do
        [[ $name == A ]] && bin=$a || bin=$b
        port=$(free_port) admin=$(free_port)
        BIN=$bin streetgate_config "$DIR/sg-$name.yaml" "$port" "$admin" "$DIR/grants.json" 10s
        local http1=${HTTP1_A:-hyper}
        [[ $name == B ]] && http1=${HTTP1_B:-hyper}
        BIN=$bin STREETGATE_HTTP1=$http1 STREETGATE_WORKERS=${STREETGATE_WORKERS:-1} \
            start_streetgate "$DIR/sg-$name.yaml" "$admin"
        url[$name]="http://127.0.0.1:$port$PATH_ALLOWED"
        pid[$name]=$SG_PID
        check_200 "$name" "${url[$name]}"
        wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "${url[$name]}" >/dev/null
    done
    local round r
    for ((round = 1; round <= ROUNDS; round++)); do
        for name in A B; do
            r=$(bench "$name" "${url[$name]}" "${pid[$name]}") || return 1
            echo "1 $round $r" | tee -a "$results" >&2
        done
    done
    for name in A B; do
        echo "$name RSS after the run: $(awk '/VmRSS/ {print $2}' "/proc/${pid[$name]}/status") kB"
    done
    python3 - "$results" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for _, rnd, name, rps, p50, p99, cpu in rows:
    by.setdefault(int(rnd), {})[name] = (float(rps), int(p99), float(cpu))
cpu = [v["B"][2] / v["A"][2] for v in by.values()]
rps = [v["B"][0] / v["A"][0] for v in by.values()]
p99 = [v["B"][1] / v["A"][1] for v in by.values()]
for k, v in sorted(by.items()):
    print(f"round {k}: A {v['A'][2]:.1f} µs/req {v['A'][0]:.0f} req/s p99 {v['A'][1]} | "
          f"B {v['B'][2]:.1f} µs/req {v['B'][0]:.0f} req/s p99 {v['B'][1]}")
print(f"B / A: CPU/req {st.mean(cpu):.3f}x  req/s {st.mean(rps):.3f}x  p99 {st.mean(p99):.2f}x"
      f"  (per round CPU {' '.join(f'{c:.3f}' for c in cpu)})")
PY
}

# profile: perf samples of one streetgate worker under wrk.
profile() {
    command -v perf >/dev/null || { log "perf not found"; return 1; }
    start_upstream
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs "$ORGS" --users "$USERS" --works "$WORKS"
    TOKEN=$(token)
    local port admin
    port=$(free_port) admin=$(free_port)
    streetgate_config "$DIR/streetgate.yaml" "$port" "$admin" "$DIR/grants.json" 10s
    STREETGATE_WORKERS=${STREETGATE_WORKERS:-1} start_streetgate "$DIR/streetgate.yaml" "$admin"
    local url="http://127.0.0.1:$port$PATH_ALLOWED"
    check_200 streetgate "$url"
    wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
    if [[ -n ${PERF_EVENT:-} ]]; then
        # A probe (e.g. probe_libc:clock_gettime, added with `perf probe`) is recorded on every
        # hit, over exactly one wrk run: hits / requests is calls per request.
        perf record -e "$PERF_EVENT" --call-graph "${CALLGRAPH:-fp}" -p "$SG_PID" \
            -o "$DIR/perf.data" 2>"$DIR/perf.log" >/dev/null &
        local perf_pid=$!
        sleep 1 # perf attaches
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $TOKEN" "$url" \
            >"$DIR/wrk.log"
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        local hits requests
        hits=$(perf report -i "$DIR/perf.data" --stdio 2>/dev/null |
            awk '/^# Event count/ {print $NF; exit}')
        requests=$(awk '/requests in/ {print $1}' "$DIR/wrk.log")
        python3 -c "print(f'$PERF_EVENT: $hits hits, $requests requests: {$hits / $requests:.2f} per request')"
    else
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $TOKEN" "$url" \
            >"$DIR/wrk.log" &
        local wrk_pid=$!
        perf record -e cpu-clock -F "${PERF_FREQ:-4000}" --call-graph "${CALLGRAPH:-fp}" \
            -p "$SG_PID" -o "$DIR/perf.data" -- sleep "${DURATION%s}" 2>"$DIR/perf.log" >/dev/null
        wait "$wrk_pid"
    fi
    grep -E 'Requests/sec' "$DIR/wrk.log"
    perf report -i "$DIR/perf.data" --no-children --percent-limit 0.3 --stdio \
        -g none --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' |
        sed 's/ *- *- *$//; s/ *$//' >"$DIR/perf.txt"
    head -60 "$DIR/perf.txt"
}

# syscalls: system calls per request of streetgate (hyper's HTTP/1 server and client, then
# the native ones) and of haproxy (nbthread 1), each under the same wrk load, counted with
# `perf stat -e raw_syscalls:sys_enter` over DURATION.
syscalls() {
    command -v perf >/dev/null || { log "perf not found"; return 1; }
    start_upstream
    "$FIXTURE" snapshot "$DIR/grants.json" --orgs "$ORGS" --users "$USERS" --works "$WORKS"
    TOKEN=$(token)
    local name port admin url pid
    for name in hyper native haproxy; do
        port=$(free_port)
        if [[ $name == haproxy ]]; then
            fill "$HERE/haproxy.cfg" "$DIR/haproxy.cfg" WORKERS=1 PORT="$port" \
                JWT_PORT="$(free_port)" UPSTREAM_PORT="$UPSTREAM_PORT" PUBKEY="$KEYS/rsa1.pub.pem" \
                ISSUER="$ISSUER" AUDIENCE="$AUDIENCE"
            start haproxy haproxy -W -db -f "$DIR/haproxy.cfg"
            wait_port "$port"
            sleep 0.5
            pid=$(pgrep -P "$LAST_PID" | head -1)
        else
            admin=$(free_port)
            streetgate_config "$DIR/sg-$name.yaml" "$port" "$admin" "$DIR/grants.json" 10s
            STREETGATE_HTTP1=$name STREETGATE_WORKERS=1 start_streetgate "$DIR/sg-$name.yaml" "$admin"
            pid=$SG_PID
        fi
        url="http://127.0.0.1:$port$PATH_ALLOWED"
        check_200 "$name" "$url"
        wrk -t"$THREADS" -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "Authorization: Bearer $TOKEN" "$url" \
            >"$DIR/wrk-$name.log" &
        local wrk_pid=$!
        local before after
        before=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
        perf stat -e raw_syscalls:sys_enter -p "$pid" -x, -o "$DIR/stat-$name.txt" \
            -- sleep "${DURATION%s}" >/dev/null 2>&1
        after=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
        wait "$wrk_pid"
        local calls rps
        calls=$(awk -F, '/raw_syscalls/ {print $1}' "$DIR/stat-$name.txt")
        rps=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk-$name.log")
        python3 - "$name" "$calls" "$rps" "${DURATION%s}" "$CLK_TCK" $before $after <<'PY'
import sys
name, calls, rps, secs, tck = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
u0, s0, u1, s1 = map(float, sys.argv[6:10])
n = rps * secs
print(f"{name}: {calls / n:.2f} syscalls per request, user {(u1 - u0) * 1e6 / tck / n:.1f} µs + "
      f"system {(s1 - s0) * 1e6 / tck / n:.1f} µs per request ({rps:.0f} req/s)")
PY
    done
}

rss() {
    local port admin
    port=$(free_port)
    if "$BIN" demo --help >/dev/null 2>&1 && start_demo "$port"; then
        admin=$((port + 1))
        RSS_WHAT="streetgate demo"
    else
        start_upstream
        admin=$(free_port)
        fill "$HERE/streetgate.yaml" "$DIR/idle.yaml" PORT="$port" ADMIN_PORT="$admin" \
            JWKS="$KEYS/jwks.json" ISSUER="$ISSUER" AUDIENCE="$AUDIENCE" GRANTS="$DIR/none.json" \
            POLL=10s UPSTREAM_PORT="$UPSTREAM_PORT"
        start streetgate "$BIN" serve -c "$DIR/idle.yaml"
        SG_PID=$LAST_PID
        wait_http "http://127.0.0.1:$admin/healthz" 30
        RSS_WHAT="streetgate serve, one-route config, no grants snapshot"
    fi
    sleep 2
    local kb
    kb=$(awk '/VmRSS/ {print $2}' "/proc/$SG_PID/status")
    echo "idle RSS ($RSS_WHAT): $kb kB ($((kb / 1024)) MiB)"
}

start_demo() { # PORT: true when the demo came up
    start demo "$BIN" demo --port "$1"
    SG_PID=$LAST_PID
    if wait_http "http://127.0.0.1:$(($1 + 1))/healthz" 30 2>/dev/null; then
        return 0
    fi
    kill "$SG_PID" 2>/dev/null || true
    return 1
}

ensure_tools
build
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(nginx -v 2>&1 | cut -d/ -f2), haproxy $(haproxy -v | head -1 | cut -d' ' -f3)," \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), streetgate $(git -C "$ROOT" rev-parse --short HEAD)"
case $MODE in
compare) compare ;;
swap) swap ;;
deltas) deltas ;;
rss) rss ;;
ab) ab ;;
profile) profile ;;
syscalls) syscalls ;;
all)
    compare
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    swap
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    rss
    ;;
*)
    echo "usage: $0 [compare|swap|deltas|rss|all|ab|profile|syscalls]" >&2
    exit 2
    ;;
esac
