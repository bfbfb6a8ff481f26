#!/usr/bin/env bash
# Compares the CPU cost per proxied request of two meridian binaries, run
# side by side: both on core 0 (configs/bench-proxy.yaml, and a copy moved
# to port 8081), the harness's upstream and wrk on core 1. wrk alternates
# between them in short runs, so that a machine whose speed drifts from
# minute to minute (a shared VM) slows both alike; the paired ratio of
# each round is what to read.
#
#   scripts/pair-cpu.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]
#   scripts/pair-cpu.sh haproxy NEW_BINARY [ROUNDS] [SECONDS]
#
# With "haproxy" as OLD, HAProxy runs the harness's own configuration on
# port 8081 in place of a second meridian. Needs wrk and Go (it builds the
# harness's upstream from ../shared/bench). Prints, per round, CPU
# microseconds per request and p99 (ms) of each, then the medians, the
# median of NEW/OLD and the median of the p99 differences. With TLS=1 set,
# wrk speaks HTTP/1.1 over TLS: meridian serves configs/bench-proxy-tls.yaml
# (NEW on 8443, OLD on 8444) and HAProxy its TLS frontend on 8444.
set -euo pipefail

A=$1 B=$2 ROUNDS=${3:-12} SECS=${4:-4}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench/http}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

(cd "$BENCH/backend" && go build -o "$TMP/backend" .)
taskset -c 1 "$TMP/backend" -mode fast -listen 127.0.0.1:8180 >/dev/null 2>&1 &
# NEW on 8080 (8443 with TLS), OLD on 8081 (8444).
if [ "${TLS:-}" = 1 ]; then
	SCHEME=https CFG=$ROOT/configs/bench-proxy-tls.yaml NEWPORT=8443 OLDPORT=8444
	MOVE=(-e 's/127.0.0.1:8443/127.0.0.1:8444/' -e 's/127.0.0.1:9056/127.0.0.1:9058/')
else
	SCHEME=http CFG=$ROOT/configs/bench-proxy.yaml NEWPORT=8080 OLDPORT=8081
	MOVE=(-e 's/127.0.0.1:8080/127.0.0.1:8081/' -e 's/127.0.0.1:9055/127.0.0.1:9057/')
fi
taskset -c 0 "$B" run --config "$CFG" >"$TMP/b.log" 2>&1 &
PB=$!
if [ "$A" = haproxy ]; then
	cat "$BENCH/tls/cert.pem" "$BENCH/tls/key.pem" >"$TMP/tls.pem"
	sed -e 's/@HAPROXY_PORT@/8081/' -e 's/@HAPROXY_H2C_PORT@/8184/' -e 's/@HAPROXY_TLS_PORT@/8444/' \
		-e 's/@UPSTREAM_PORT@/8180/' -e "s|@TLS_PEM@|$TMP/tls.pem|" "$BENCH/haproxy/haproxy.cfg" >"$TMP/haproxy.cfg"
	taskset -c 0 haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/a.log" 2>&1 &
else
	# The TLS config names its certificate files relative to itself.
	sed "${MOVE[@]}" -e "s|: bench-tls/|: $ROOT/configs/bench-tls/|g" "$CFG" >"$TMP/a.yaml"
	taskset -c 0 "$A" run --config "$TMP/a.yaml" >"$TMP/a.log" 2>&1 &
fi
PA=$!
for port in $NEWPORT $OLDPORT; do
	for _ in $(seq 50); do
		curl -kfso /dev/null "$SCHEME://127.0.0.1:$port/" && break
		sleep 0.2
	done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
run() { # pid port → "us_per_request p99"
	local c0 c1 out
	c0=$(ticks "$1")
	out=$(taskset -c 1 wrk -t1 -c64 -d"${SECS}s" --latency "$SCHEME://127.0.0.1:$2/")
	c1=$(ticks "$1")
	awk -v c="$((c1 - c0))" -v hz="$HZ" '
		/requests in/ { n = $1 }
		$1 == "99%" { p = $2 + 0; if ($2 ~ /us$/) p /= 1000; else if ($2 ~ /[^m]s$/) p *= 1000 }
		END { printf "%.2f %.3f\n", c * 1e6 / hz / n, p }' <<<"$out"
}
run "$PA" "$OLDPORT" >/dev/null # warm-up
run "$PB" "$NEWPORT" >/dev/null

printf 'round old_us_per_req old_p99 new_us_per_req new_p99\n'
for i in $(seq "$ROUNDS"); do
	read -r ua pa <<<"$(run "$PA" "$OLDPORT")"
	read -r ub pb <<<"$(run "$PB" "$NEWPORT")"
	printf '%d %s %s %s %s\n' "$i" "$ua" "$pa" "$ub" "$pb"
done | tee "$TMP/rounds"
awk 'function med(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	NR > 1 { n++; o[n] = $2; w[n] = $4; r[n] = $4 / $2; d[n] = $5 - $3 }
	END { printf "median µs per request: old %.2f, new %.2f; median paired new/old %.3f; median p99 new-old %+.3f ms\n",
		med(o, n), med(w, n), med(r, n), med(d, n) }' "$TMP/rounds"
