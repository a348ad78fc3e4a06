# Issue 2 figures: partition change via the file vs an nft subprocess,
# ping with 1,000 partition pairs installed, 50 netns nodes up and down,
# reading a counters file.
. "$PV_TOP/tests/lib.sh"
B=$PV_BUILD/tests/bin/bench_fileops
lab=$(lab_name bench)
lab_start "$lab" || { echo "daemon did not start"; exit 1; }

for n in a b c d; do echo "netns $n" > "$LAB/ctl"; done
mkdir "$LAB/lan"; echo "a b c d" > "$LAB/lan/attach"

file=$($B write "$LAB/lan/partition" 400 "a b" "-a b" | awk '{print $2}')
pa=$(cat "$LAB/a/lan/tap"); pb=$(cat "$LAB/b/lan/tap")
nft=$($B exec "pv-$lab" 60 "nft add element bridge provium drop_pairs { \"$pa\" . \"$pb\" }" \
	"nft delete element bridge provium drop_pairs { \"$pa\" . \"$pb\" }" | awk '{print $2}')
printf 'partition change: via the file median %s us; via an nft subprocess median %s us; %.0fx faster (goal >= 20x)\n' \
	"$file" "$nft" "$(echo "$nft / $file" | bc -l)"

read_us=$($B read "$LAB/a/lan/counters" 2000 | awk '{print $2}')
sys_us=$($B read /proc/self/net/dev 2000 | awk '{print $2}')
echo "counters read (open, read, close): median $read_us us (goal < 50 us); /proc/self/net/dev for scale: $sys_us us"
# the same with the daemon and the reader on one CPU: what a FUSE round trip
# costs without a cross-CPU wake-up (an IPI, expensive in a VM)
dpid=$(pgrep -f "provium-labd( .*)? $lab\$")
taskset -a -p -c 0 "$dpid" >/dev/null
pinned=$(taskset -c 0 $B read "$LAB/a/lan/counters" 2000 | awk '{print $2}')
taskset -a -p -c 0-$(($(nproc) - 1)) "$dpid" >/dev/null
echo "counters read with daemon and reader on one CPU: median $pinned us"

rtt() { nrun c "ping -q -c 500 -i 0.002 d.lan" | grep -o 'rtt[^"]*' | cut -d/ -f5; }
# 47 more nodes for 1,000 symmetric partitions among them (c and d untouched)
for i in $(seq 1 47); do echo "netns x$i" > "$LAB/ctl"; done
echo "$(seq -f 'x%g' 1 47 | xargs)" > "$LAB/lan/attach"
pairs=$(for i in $(seq 1 47); do for j in $(seq $((i + 1)) 47); do echo "x$i x$j"; done; done | head -1000)
# rounds alternate none / 1000 pairs, so drift of the machine shows as spread
none=() with=()
for round in 1 2 3; do
	none+=("$(rtt)")
	t0=$(date +%s%N)
	printf '%s\n' "$pairs" | dd of="$LAB/lan/partition" bs=1M status=none iflag=fullblock
	t1=$(date +%s%N)
	with+=("$(rtt)")
	echo none > "$LAB/lan/partition"
done
elems=2000
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.4f", s / NR}'; }
printf '1000 partitions (%d set elements) applied in one write: %.1f ms\n' "$elems" "$(echo "($t1 - $t0) / 1000000" | bc -l)"
printf 'ping c -> d, 3 rounds of 500: %s ms with none (%s), %s ms with 1000 pairs (%s): %+.1f%% (goal within 10%%)\n' \
	"$(mean "${none[@]}")" "${none[*]}" "$(mean "${with[@]}")" "${with[*]}" \
	"$(echo "($(mean "${with[@]}") - $(mean "${none[@]}")) * 100 / $(mean "${none[@]}")" | bc -l)"
lab_stop "$lab"

# 50 netns nodes on one bridge: up and attached, then torn down
lab=$(lab_name bench50)
lab_start "$lab" || exit 1
mkdir "$LAB/lan"
t0=$(date +%s%N)
for i in $(seq 1 50); do echo "netns n$i" > "$LAB/ctl"; done
echo "$(seq -f 'n%g' 1 50 | xargs)" > "$LAB/lan/attach"
t1=$(date +%s%N)
nrun n1 "ping -c1 -W1 n50.lan" >/dev/null || echo "(n1 could not reach n50)"
t2=$(date +%s%N)
echo teardown > "$LAB/ctl"
while [ -e "/run/netns/pv-$lab" ]; do sleep 0.01; done
t3=$(date +%s%N)
printf '50 netns nodes: up and attached in %.2f s (goal < 2 s); whole lab torn down in %.2f s (goal < 1 s)\n' \
	"$(echo "($t1 - $t0) / 1000000000" | bc -l)" "$(echo "($t3 - $t2) / 1000000000" | bc -l)"
