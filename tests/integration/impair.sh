#!/bin/bash
# Impairments end to end on netns nodes a, b, c on bridge lan, as users see
# them: ping round trips, loss counts and iperf3 throughput that really change.
#
# This machine's kernel has no sch_netem. Here the script checks what needs no
# netem (bad input, the EOPNOTSUPP refusal, bandwidth through HTB alone,
# detach), then runs itself again with --inside under Debian's stock kernel
# through contrib/kernel-run for everything that needs netem (latency, loss,
# bandwidth with latency, reset). On a kernel with netem it all runs here.
#   impair.sh [--inside]
. "$(dirname "$0")/../lib.sh"
need_root impair
inside=0
[ "${1:-}" = --inside ] && inside=1

lab=$(lab_name imp)
lab_start "$lab" || { not_ok "impair: daemon starts"; exit 1; }
L=$LAB/lan
mkdir "$L"
for n in a b c; do echo "netns $n" > "$LAB/ctl"; done
echo "a b c" > "$L/attach"
grep -q '^netem yes' "$LAB/features" && netem=1 || netem=0
echo "# impair: kernel $(uname -r), netem $([ $netem = 1 ] && echo yes || echo no)$([ $inside = 1 ] && echo ', under kernel-run')"

ns() { echo "pv-$lab.$1"; }
ip_of() { cat "$LAB/$1/lan/ip"; }
# in_range VALUE LO HI: LO <= VALUE <= HI (decimals allowed)
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }'; }
# check_range NAME VALUE LO HI [UNIT]
check_range() {
	if in_range "$2" "$3" "$4"; then ok "$1 ($2${5:-} in $3..$4)"
	else not_ok "$1: ${2:-nothing} not in $3..$4${5:-}"; fi
}
# rtt FROM TO [COUNT]: average ping round trip in ms
rtt() {
	ip netns exec "$(ns "$1")" ping -c "${3:-10}" -i 0.05 -W 2 -q "$(ip_of "$2")" 2>/dev/null |
		awk -F/ '/^(rtt|round-trip)/ { print $5 }'
}
# received FROM TO COUNT: echo replies received out of COUNT pings 10 ms apart
received() {
	ip netns exec "$(ns "$1")" ping -c "$3" -i 0.01 -W 1 -q "$(ip_of "$2")" 2>/dev/null |
		awk '/packets transmitted/ { print $4 }'
}
# mbit FROM TO: iperf3 FROM -> TO for 2 s, Mbit/s as received (two tries:
# TCG guests are slow to start a server now and then)
mbit() {
	local try m
	for try in 1 2; do
		m=$(mbit_once "$1" "$2") && [ -n "$m" ] && { echo "$m"; return; }
		echo "# iperf3 $1 -> $2 failed (try $try): $m" >&2
	done
}
mbit_once() {
	local port=$((5201 + RANDOM % 500)) out="" i srv
	ip netns exec "$(ns "$2")" timeout 30 iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
	srv=$!
	cleanup_add "kill $srv"
	for i in $(seq 100); do
		ip netns exec "$(ns "$2")" ss -Hltn "sport = :$port" | grep -q . && break
		sleep 0.1
	done
	out=$(ip netns exec "$(ns "$1")" timeout 20 iperf3 -c "$(ip_of "$2")" -p "$port" -t 2 -J 2>&1)
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	jq -er '.end.sum_received.bits_per_second / 1e6 | . * 100 | round / 100' <<<"$out" 2>/dev/null ||
		{ jq -r '.error // empty' <<<"$out" 2>/dev/null | head -1; return 1; }
}
# binomial_bounds N P: "LO HI", mean +- 4.5 standard deviations (a false
# failure about once in 150000 runs)
binomial_bounds() {
	awk -v n="$1" -v p="$2" 'BEGIN { m = n * p; s = sqrt(n * p * (1 - p));
		lo = int(m - 4.5 * s); hi = int(m + 4.5 * s + 1); print lo, hi }'
}
qdiscs() { tc -n "pv-$lab" qdisc show; }
snapshot() { for f in latency_ms jitter_ms drop_pct drop_corr_pct duplicate_pct corrupt_pct reorder_pct bandwidth_bps impair partition; do echo "$f: $(cat "$L/$f")"; done; qdiscs; }

# first pings resolve addresses, so later figures are clean
for x in a b c; do for y in a b c; do [ $x != $y ] && rtt $x $y 1 >/dev/null; done; done

# ---- what needs no netem: bad input, refusals, bandwidth through HTB ----

bad_input() {
	echo "a -> b bandwidth_bps=2000000" > "$L/impair"
	echo 5000000 > "$L/bandwidth_bps"
	local before
	before=$(snapshot)
	expect_error "negative latency" EINVAL "echo -5 > '$L/latency_ms'"
	expect_error "non-numeric latency" EINVAL "echo fast > '$L/latency_ms'"
	expect_error "latency over 60000 ms" EINVAL "echo 60001 > '$L/latency_ms'"
	expect_error "latency with decimals" EINVAL "echo 1.5 > '$L/latency_ms'"
	expect_error "negative percent" EINVAL "echo -1 > '$L/drop_pct'"
	expect_error "percent over 100" EINVAL "echo 100.01 > '$L/drop_pct'"
	expect_error "percent with 5 decimals" EINVAL "echo 0.00001 > '$L/corrupt_pct'"
	expect_error "percent with a unit" EINVAL "echo 5% > '$L/duplicate_pct'"
	expect_error "bandwidth below 8000 bit/s" EINVAL "echo 7999 > '$L/bandwidth_bps'"
	expect_error "bandwidth over 1 Tbit/s" EINVAL "echo 1000000000001 > '$L/bandwidth_bps'"
	expect_error "empty write" EINVAL "echo '' > '$L/bandwidth_bps'"
	expect_error "impair: unknown key" EINVAL "echo 'a -> b speed=5' > '$L/impair'"
	expect_error "impair: no value" EINVAL "echo 'a -> b bandwidth_bps' > '$L/impair'"
	expect_error "impair: no keys" EINVAL "echo 'a -> b' > '$L/impair'"
	expect_error "impair: not a pair" EINVAL "echo 'a b bandwidth_bps=1M' > '$L/impair'"
	expect_error "impair: key twice" EINVAL "echo 'a -> b bandwidth_bps=1M bandwidth_bps=2M' > '$L/impair'"
	expect_error "impair: bad value" EINVAL "echo 'a -> b bandwidth_bps=-1' > '$L/impair'"
	expect_error "impair: percent over 100" EINVAL "echo 'a -> b drop_pct=150' > '$L/impair'"
	expect_error "impair: unknown node" ENOENT "echo 'a -> zz bandwidth_bps=1M' > '$L/impair'"
	check "the error names the node" bash -c "tail -n1 '$LAB/errors' | grep -q '\`zz\`'"
	expect_error "impair: pair with itself" EINVAL "echo 'a -> a bandwidth_bps=1M' > '$L/impair'"
	echo "netns d" > "$LAB/ctl"
	expect_error "impair: node not attached" ENOENT "echo 'a -> d bandwidth_bps=1M' > '$L/impair'"
	check "the error says to attach first" bash -c "tail -n1 '$LAB/errors' | grep -q 'attach first'"
	echo "rm d" > "$LAB/ctl"
	expect_error "impair: a bad line rejects the whole write" ENOENT \
		"printf 'c -> b bandwidth_bps=3M\nb -> zz bandwidth_bps=1M\n' | dd of='$L/impair' bs=64k status=none"
	check_eq "bad input changed nothing" "$before" "$(snapshot)"
	echo 1 > "$L/reset"
}

no_netem() {
	local before
	check "features says netem no" grep -qx 'netem no' "$LAB/features"
	check "features says htb yes" grep -qx 'htb yes' "$LAB/features"
	check "features says nft_bridge yes" grep -qx 'nft_bridge yes' "$LAB/features"
	echo "a -> b bandwidth_bps=2000000" > "$L/impair"
	before=$(snapshot)
	expect_error "latency without netem" EOPNOTSUPP "echo 50 > '$L/latency_ms'"
	check "the error names sch_netem" bash -c "tail -n1 '$LAB/errors' | grep -q sch_netem"
	expect_error "loss without netem" EOPNOTSUPP "echo 30 > '$L/drop_pct'"
	expect_error "per-pair latency without netem" EOPNOTSUPP "echo 'a -> b latency_ms=5' > '$L/impair'"
	expect_error "a cap with latency in one line, without netem" EOPNOTSUPP \
		"echo 'c -> b bandwidth_bps=1M jitter_ms=5' > '$L/impair'"
	check_eq "a refused write records nothing" "$before" "$(snapshot)"
	check "0 (off) needs no netem" bash -c "echo 0 > '$L/latency_ms'"
	echo 1 > "$L/reset"
}

bandwidth() {
	local base m ab cb
	base=$(mbit a b)
	echo "# bandwidth: a -> b unshaped ${base} Mbit/s"
	echo 20000000 > "$L/bandwidth_bps"
	check_eq "bandwidth_bps reads back" 20000000 "$(cat "$L/bandwidth_bps")"
	check "every port has our HTB root" bash -c "[ \$(tc -n pv-$lab qdisc show | grep -c 'qdisc htb 1: dev p') = 3 ]"
	m=$(mbit a b)
	check_range "whole bridge 20 Mbit/s: a -> b" "$m" 17 23 " Mbit/s"
	m=$(mbit c a)
	check_range "whole bridge 20 Mbit/s: c -> a" "$m" 17 23 " Mbit/s"
	echo 1 > "$L/reset"
	check "reset removes every qdisc" bash -c "! tc -n pv-$lab qdisc show | grep -q htb"
	m=$(mbit a b)
	check_range "reset: throughput back to unshaped" "$m" 100 1e9 " Mbit/s"

	echo "a -> b bandwidth_bps=5M" > "$L/impair"
	check_eq "impair reads back" "a -> b bandwidth_bps=5000000" "$(cat "$L/impair")"
	check_eq "state.json shows the pair" "a b 5000000" \
		"$(jq -r '.bridges[0].impairments.pairs[0] | "\(.from) \(.to) \(.bandwidth_bps)"' "$LAB/state.json")"
	check "the prio map marks a's frames to b" bash -c \
		"ip netns exec pv-$lab nft list map bridge provium prio | grep -q '\"p1-1\" . \"p2-1\" : 1:2'"
	ab=$(mbit a b)
	cb=$(mbit c b)
	check_range "pair a -> b 5 Mbit/s" "$ab" 4.25 5.75 " Mbit/s"
	check_range "c -> b keeps its speed" "$cb" 50 1e9 " Mbit/s"
	# a per-pair cap and a whole-bridge cap, each where it belongs
	echo 20M > "$L/bandwidth_bps"
	ab=$(mbit a b)
	cb=$(mbit c b)
	check_range "pair 5 Mbit/s under a 20 Mbit/s bridge: a -> b" "$ab" 4.25 5.75 " Mbit/s"
	check_range "pair 5 Mbit/s under a 20 Mbit/s bridge: c -> b" "$cb" 17 23 " Mbit/s"
	echo 0 > "$L/bandwidth_bps"
	check_eq "changing the bridge leaves the pair" "a -> b bandwidth_bps=5000000" "$(cat "$L/impair")"
	# above 4 Gbit/s: 64-bit rates
	echo 6G > "$L/bandwidth_bps"
	check_eq "6 Gbit/s reads back" 6000000000 "$(cat "$L/bandwidth_bps")"
	check "6 Gbit/s is in the kernel" bash -c "tc -n pv-$lab class show dev p2-1 | grep -q 'rate 6Gbit'"
	echo 0 > "$L/bandwidth_bps"

	# a second write to the pair changes only its key; clear; stable class
	echo "a -> b bandwidth_bps=4M" > "$L/impair"
	echo "c -> b bandwidth_bps=3M" > "$L/impair"
	check_eq "two pairs" "a -> b bandwidth_bps=4000000|c -> b bandwidth_bps=3000000" "$(paste -sd'|' "$L/impair")"
	check "a -> b kept its class 1:2" bash -c "tc -n pv-$lab class show dev p2-1 | grep -q 'class htb 1:2 .*rate 4Mbit'"
	echo "a -> b clear" > "$L/impair"
	check_eq "clear removes one pair" "c -> b bandwidth_bps=3000000" "$(cat "$L/impair")"
	check "clear of an absent pair is a no-op" bash -c "echo 'a -> b clear' > '$L/impair'"
	check "its class is gone" bash -c "! tc -n pv-$lab class show dev p2-1 | grep -q 'class htb 1:2 '"
	echo "a -> b bandwidth_bps=0" > "$L/impair"
	check_eq "a pair set to 0 says nothing" "c -> b bandwidth_bps=3000000" "$(cat "$L/impair")"

	# detach takes every entry naming the node
	echo "b -> a bandwidth_bps=2M" > "$L/impair"
	echo "c -> a bandwidth_bps=2M" > "$L/impair"
	echo b > "$L/detach"
	check_eq "detach removes b's pairs" "c -> a bandwidth_bps=2000000" "$(cat "$L/impair")"
	check "and b's prio entries" bash -c "! ip netns exec pv-$lab nft list map bridge provium prio | grep -q p2-1"
	echo b > "$L/attach"
	check_eq "re-attached b has no pairs" "c -> a bandwidth_bps=2000000" "$(cat "$L/impair")"
	echo reset > "$LAB/ctl"
	check_eq "lab reset clears pairs" "" "$(cat "$L/impair")"
	check "lab reset removes qdiscs" bash -c "! tc -n pv-$lab qdisc show | grep -q htb"
	for x in a c; do rtt $x b 1 >/dev/null; rtt b $x 1 >/dev/null; done
}

# ---- what needs netem ----

latency() {
	local base_ab base_cb ab cb
	base_ab=$(rtt a b)
	base_cb=$(rtt c b)
	echo "# latency: baseline a-b ${base_ab} ms, c-b ${base_cb} ms"
	echo 50 > "$L/latency_ms"
	check_eq "latency_ms reads back" 50 "$(cat "$L/latency_ms")"
	ab=$(rtt a b)
	check_range "50 ms whole bridge: a-b round trip +~100 ms" \
		"$(awk -v x="$ab" -v y="$base_ab" 'BEGIN { print x - y }')" 80 160 " ms"
	echo 0 > "$L/latency_ms"
	echo "a -> b latency_ms=80" > "$L/impair"
	ab=$(rtt a b)
	cb=$(rtt c b)
	check_range "a -> b 80 ms: a-b round trip +~80 ms" \
		"$(awk -v x="$ab" -v y="$base_ab" 'BEGIN { print x - y }')" 64 130 " ms"
	check_range "a -> b 80 ms: c-b untouched" \
		"$(awk -v x="$cb" -v y="$base_cb" 'BEGIN { print x - y }')" -5 8 " ms"
	# per pair overrides the bridge for its key, the rest of the frames to b
	# keep the whole-bridge value: a->b 80 + b->a 50; c->b 50 + b->c 50
	echo 50 > "$L/latency_ms"
	ab=$(rtt a b)
	cb=$(rtt c b)
	check_range "pair 80 over bridge 50: a-b round trip +~130 ms" \
		"$(awk -v x="$ab" -v y="$base_ab" 'BEGIN { print x - y }')" 110 190 " ms"
	check_range "pair 80 over bridge 50: c-b round trip +~100 ms" \
		"$(awk -v x="$cb" -v y="$base_cb" 'BEGIN { print x - y }')" 80 160 " ms"
	echo 1 > "$L/reset"
	ab=$(rtt a b)
	check_range "reset: a-b round trip back to baseline" \
		"$(awk -v x="$ab" -v y="$base_ab" 'BEGIN { print x - y }')" -5 8 " ms"
	check "reset removes every qdisc" bash -c "! tc -n pv-$lab qdisc show | grep -qE 'htb|netem'"
}

loss() {
	local n=300 got b
	# Whole bridge: the request is dropped on b's port and the reply on a's,
	# independently, so a round trip succeeds with p = 0.7 * 0.7 = 0.49.
	echo 30 > "$L/drop_pct"
	got=$(received a b $n)
	b=$(binomial_bounds $n 0.49)
	check_range "30% whole bridge, $n pings: replies (p = 0.49)" "$got" ${b% *} ${b#* }
	echo 0 > "$L/drop_pct"
	# Per pair a -> b: only requests are dropped, so p = 0.7; c -> b loses none.
	echo "a -> b drop_pct=30" > "$L/impair"
	got=$(received a b $n)
	b=$(binomial_bounds $n 0.7)
	check_range "30% on a -> b, $n pings: replies (p = 0.7)" "$got" ${b% *} ${b#* }
	got=$(received c b 100)
	check_range "30% on a -> b: c -> b loses nothing" "$got" 99 100
	echo 1 > "$L/reset"
}

keep_other_keys() {
	echo 30 > "$L/drop_pct"
	echo 50 > "$L/latency_ms"
	echo 80 > "$L/latency_ms"
	check_eq "latency change keeps drop_pct" "30|80" "$(cat "$L/drop_pct")|$(cat "$L/latency_ms")"
	check "the kernel still has loss and the new delay" bash -c \
		"tc -n pv-$lab qdisc show dev p2-1 | grep 'netem' | grep -q 'delay 80ms.*loss 30%'"
	echo 10 > "$L/jitter_ms"
	echo 0.25 > "$L/corrupt_pct"
	echo 12.5 > "$L/duplicate_pct"
	echo 5 > "$L/reorder_pct"
	echo 25 > "$L/drop_corr_pct"
	check_eq "every key reads back" "80 10 30 25 12.5 0.25 5" \
		"$(cat "$L/latency_ms" "$L/jitter_ms" "$L/drop_pct" "$L/drop_corr_pct" "$L/duplicate_pct" "$L/corrupt_pct" "$L/reorder_pct" | xargs)"
	# the kernel allows a duplicating netem only alone on a port
	expect_error "duplicate with a pair to the same node" EINVAL "echo 'a -> b latency_ms=20' > '$L/impair'"
	check "the error explains" bash -c "tail -n1 '$LAB/errors' | grep -q 'duplicating netem only alone'"
	echo 0 > "$L/duplicate_pct"
	echo "a -> b latency_ms=20 drop_pct=1" > "$L/impair"
	echo "a -> b latency_ms=40" > "$L/impair"
	check_eq "a pair's second write changes only its key" "a -> b latency_ms=40 drop_pct=1" "$(cat "$L/impair")"
	echo 0 > "$L/corrupt_pct"
	check "corruption off really goes off" bash -c "! tc -n pv-$lab qdisc show dev p1-1 | grep -q corrupt"
	expect_error "reorder without latency" EINVAL "echo 0 > '$L/latency_ms'"
	check_eq "latency kept" 80 "$(cat "$L/latency_ms")"
	echo 1 > "$L/reset"
	check_eq "reset clears every key" "0 0 0 0 0 0 0 0" \
		"$(cat "$L/latency_ms" "$L/jitter_ms" "$L/drop_pct" "$L/drop_corr_pct" "$L/duplicate_pct" "$L/corrupt_pct" "$L/reorder_pct" "$L/bandwidth_bps" | xargs)"
}

bandwidth_latency() {
	local m
	echo 10M > "$L/bandwidth_bps"
	echo 20 > "$L/latency_ms"
	m=$(mbit a b)
	check_range "whole bridge 10 Mbit/s with 20 ms: a -> b" "$m" 8.5 11.5 " Mbit/s"
	echo 1 > "$L/reset"
	echo "a -> b bandwidth_bps=5M latency_ms=20" > "$L/impair"
	m=$(mbit a b)
	check_range "pair 5 Mbit/s with 20 ms: a -> b" "$m" 4.25 5.75 " Mbit/s"
	check "and a -> b has its netem" bash -c "tc -n pv-$lab qdisc show dev p2-1 | grep -q 'netem 2: parent 1:2 .*delay 20ms'"
	echo 1 > "$L/reset"
	m=$(mbit a b)
	check_range "reset: throughput back to unshaped" "$m" 50 1e9 " Mbit/s"
}

if [ $inside = 0 ]; then
	bad_input
	[ $netem = 0 ] && no_netem
	bandwidth
fi
if [ $netem = 1 ]; then
	latency
	loss
	keep_other_keys
	bandwidth_latency
	finish
fi
[ $inside = 1 ] && { not_ok "impair: no netem under kernel-run"; finish; }

# netem parts under Debian's stock kernel
lab_stop "$lab"
krun=${PV_KERNEL_RUN:-$PV_TOP/contrib/kernel-run}
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x "$krun" ]; then
	skipped "impair netem parts: no sch_netem here and no kernel-run/QEMU to run them under"
	finish
fi
log=$(mktemp /tmp/pv-impair.XXXXXX)
cleanup_add "rm -f '$log'"
rc=0
env -u PROVIUM_ROOT "$krun" --timeout 500 -- "$0" --inside >"$log" 2>&1 || rc=$?
cat "$log"
if [ $rc -eq 124 ] || [ $rc -eq 125 ]; then
	not_ok "impair netem parts: kernel-run failed ($rc)"
elif ! grep -q '^ok - 50 ms whole bridge' "$log"; then
	not_ok "impair netem parts did not run under kernel-run (rc $rc)"
fi
finish
