#!/bin/bash
# Benchmark: an impairment change through the lab's files against the same
# change made by a `tc` subprocess (median of 31 each), and the cost of 100
# per-pair entries on one bridge (time to apply them in one write; ping round
# trip on an unimpaired pair with and without them).
#
# Where this kernel has no sch_netem, the file-vs-tc figure here is a
# bandwidth change (an HTB class change either way), and the latency figure
# comes from Debian's stock kernel under contrib/kernel-run (TCG: both sides
# are slower there, the tc side much more).
#   tests/bench/impair.sh [--inside]
. "$(dirname "$0")/../lib.sh"
need_root bench-impair
inside=0
[ "${1:-}" = --inside ] && inside=1
N=31

lab=$(lab_name bimp)
lab_start "$lab" || { echo "impair: the daemon did not start"; exit 1; }
L=$LAB/lan
mkdir "$L"
grep -q '^netem yes' "$LAB/features" && netem=1 || netem=0
where="kernel $(uname -r)$([ $inside = 1 ] && echo ', QEMU/TCG under kernel-run')"

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f", m / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b / a }'; }

# time_file FILE V1 V2: N writes alternating V1/V2, microseconds each, as
# `echo V > FILE` does it (open, truncate, write, close: five FUSE requests)
time_file() {
	local i t0 t1 v
	for ((i = 0; i < N; i++)); do
		v=$2; ((i % 2)) && v=$3
		t0=${EPOCHREALTIME/./}; echo "$v" > "$1"; t1=${EPOCHREALTIME/./}
		echo $((t1 - t0))
	done
}
# time_fd FILE V1 V2: the same with one write(2) each on a descriptor held
# open, as a harness that keeps its files open does it
time_fd() {
	local i t0 t1 v
	exec 3>"$1"
	for ((i = 0; i < N; i++)); do
		v=$2; ((i % 2)) && v=$3
		t0=${EPOCHREALTIME/./}; echo "$v" >&3; t1=${EPOCHREALTIME/./}
		echo $((t1 - t0))
	done
	exec 3>&-
}
# time_tc V1 V2 CMD...: N runs of CMD with {} replaced by V1/V2
time_tc() {
	local a=$1 b=$2 i t0 t1 v
	shift 2
	for ((i = 0; i < N; i++)); do
		v=$a; ((i % 2)) && v=$b
		t0=${EPOCHREALTIME/./}; eval "${*//\{\}/$v}" >/dev/null 2>&1; t1=${EPOCHREALTIME/./}
		echo $((t1 - t0))
	done
}
# report WHAT FILE V1 V2 TC_V1 TC_V2 TC_CMD...
report() {
	local what=$1 file=$2 v1=$3 v2=$4 t1=$5 t2=$6 f d t
	shift 6
	f=$(time_file "$file" "$v1" "$v2" | median)
	d=$(time_fd "$file" "$v1" "$v2" | median)
	t=$(time_tc "$t1" "$t2" "$@" | median)
	echo "impair: $what via file: median $f ms (echo > file), $d ms (write on an open descriptor); via tc subprocess: $t ms; ratio $(ratio "$f" "$t")x / $(ratio "$d" "$t")x (goal >= 20x) [$where]"
}

for n in a b; do echo "netns $n" > "$LAB/ctl"; done
echo "a b" > "$L/attach"
tcn="tc -n pv-$lab"

if [ $netem = 1 ]; then
	echo 10 > "$L/latency_ms"
	report "latency change (whole bridge: 2 ports; tc: one netem change per port)" "$L/latency_ms" 20 30 20 30 \
		"$tcn qdisc change dev p1-1 parent 1:fffe handle fffe: netem delay {}ms;" \
		"$tcn qdisc change dev p2-1 parent 1:fffe handle fffe: netem delay {}ms"
	echo 0 > "$L/latency_ms"
	echo "a -> b latency_ms=10" > "$L/impair"
	report "per-pair latency change (1 port)" "$L/impair" "a -> b latency_ms=20" "a -> b latency_ms=30" 20 30 \
		"$tcn qdisc change dev p2-1 parent 1:2 handle 2: netem delay {}ms"
	echo 1 > "$L/reset"
fi
if [ $inside = 0 ]; then
	[ $netem = 1 ] || echo "impair: no sch_netem on this kernel: an HTB rate change stands in for the latency change here (the latency figures follow, from kernel-run)"
	echo 10000000 > "$L/bandwidth_bps"
	report "bandwidth change (whole bridge: 2 ports; tc: one htb class change per port)" "$L/bandwidth_bps" 20000000 30000000 20 30 \
		"$tcn class change dev p1-1 parent 1: classid 1:fffe htb rate {}mbit;" \
		"$tcn class change dev p2-1 parent 1: classid 1:fffe htb rate {}mbit"
	echo "a -> b bandwidth_bps=10M" > "$L/impair"
	report "per-pair bandwidth change (1 port)" "$L/impair" "a -> b bandwidth_bps=20M" "a -> b bandwidth_bps=30M" 20 30 \
		"$tcn class change dev p2-1 parent 1: classid 1:2 htb rate {}mbit"
	echo 1 > "$L/reset"

	# 100 per-pair entries among 11 nodes; n0 <-> n1 stays unimpaired, but
	# n1's port carries the classes of the 9 other nodes' pairs to it
	nodes=""
	for i in $(seq 0 10); do echo "netns n$i" > "$LAB/ctl"; nodes+=" n$i"; done
	echo "$nodes" > "$L/attach"
	lines=$(mktemp /tmp/pv-bench-impair.XXXXXX)
	cleanup_add "rm -f '$lines'"
	k=0
	for i in $(seq 0 10); do for j in $(seq 0 10); do
		[ $i = $j ] && continue
		[[ "$i$j" = 01 || "$i$j" = 10 ]] && continue
		[ $k -ge 100 ] && continue
		echo "n$i -> n$j bandwidth_bps=$((100 + k))M"; k=$((k + 1))
	done; done > "$lines"
	ip1=$(cat "$LAB/n1/lan/ip")
	pingrtt() { ip netns exec "pv-$lab.n0" ping -c 500 -i 0.002 -q "$ip1" 2>/dev/null | awk -F/ '/^rtt/ { print $5 }'; }
	pingrtt >/dev/null
	r0=$(pingrtt)
	t0=${EPOCHREALTIME/./}; dd if="$lines" of="$L/impair" bs=64k status=none; t1=${EPOCHREALTIME/./}
	n=$(wc -l < "$L/impair")
	classes=0
	for i in $(seq 0 10); do
		classes=$((classes + $($tcn class show dev "$(cat "$LAB/n$i/lan/tap")" | grep -c 'class htb 1:')))
	done
	r1=$(pingrtt)
	t2=${EPOCHREALTIME/./}; echo 1 > "$L/reset"; t3=${EPOCHREALTIME/./}
	echo "impair: 100 per-pair entries on one bridge: applied in one write in $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1000 }') ms ($n entries, $classes HTB classes over 11 ports, 100 prio map elements); reset in $(awk -v d=$((t3 - t2)) 'BEGIN { printf "%.1f", d / 1000 }') ms"
	echo "impair: ping round trip n0 -> n1 (unimpaired pair, 500 pings): ${r0} ms without entries, ${r1} ms with 100 entries [$where]"
fi
[ $inside = 1 ] || [ $netem = 1 ] && exit 0

# latency needs netem: measure it under Debian's stock kernel
lab_stop "$lab"
krun=${PV_KERNEL_RUN:-$PV_TOP/contrib/kernel-run}
if command -v qemu-system-x86_64 >/dev/null && [ -x "$krun" ]; then
	env -u PROVIUM_ROOT "$krun" --timeout 300 -- "$0" --inside | grep '^impair:' ||
		echo "impair: latency figures: kernel-run failed"
else
	echo "impair: latency figures skipped: no sch_netem here and no kernel-run/QEMU"
fi
