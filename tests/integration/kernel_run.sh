#!/bin/bash
# contrib/kernel-run: Debian's stock kernel under QEMU/TCG with the host's / over
# 9p. Proves the path the impairment tests take on a kernel without sch_netem:
# the command's output and exit code come back, netem delays a real ping, the
# nftables shapes of NOTES.md load, and nothing is left behind on timeout or
# Ctrl-C.
. "$(dirname "$0")/../lib.sh"
need_root kernel_run
KR=$PV_TOP/contrib/kernel-run
if ! command -v qemu-system-x86_64 >/dev/null; then
	skipped "kernel_run: qemu-system-x86_64 missing (contrib/install-deps)"; exit 0
fi
w=$(mktemp -d /tmp/pv-krtest.$$.XXXXXX)
cleanup_add "rm -rf '$w'"

# 1. version line, output split, exit code
t0=$(date +%s.%N)
rc=0
"$KR" -- sh -c 'uname -r; echo to-stderr >&2; exit 7' >"$w/out" 2>"$w/err" || rc=$?
t1=$(date +%s.%N)
echo "# kernel-run of a trivial command: $(echo "$t1 - $t0" | bc) s wall"
check_eq "kernel_run: exit code propagates" 7 "$rc"
if grep -qE '^# kernel: 6\.1\.[0-9]+-[0-9]+-amd64$' "$w/out"; then ok "kernel_run: '# kernel:' line names Debian 6.1"
else not_ok "kernel_run: no '# kernel: 6.1...' line: $(head -c 300 "$w/out")"; fi
if sed -n 2p "$w/out" | grep -qE '^6\.1\.[0-9]+-[0-9]+-amd64$'; then ok "kernel_run: uname -r is a Debian 6.1 kernel"
else not_ok "kernel_run: uname -r printed [$(sed -n 2p "$w/out")]"; fi
check_eq "kernel_run: stderr arrives on stderr only" "to-stderr" "$(cat "$w/err")"
if grep -q to-stderr "$w/out" || grep -q 'Linux version' "$w/out"; then not_ok "kernel_run: stdout mixed with stderr or kernel messages"
else ok "kernel_run: stdout carries only the command's output"; fi

# 2. netem on lo, the NOTES.md nftables table, writable tmpfs, netns, devices
# Guest /tmp is a fresh tmpfs, so the script (and the table it loads) travel
# as an argument, not as host files under /tmp.
guest_script=$(cat <<'SH'
cat >/tmp/t.nft <<'NFT'
table bridge pvkr {
  set drop_pairs { type ifname . ifname; }
  set isolated  { type ifname; }
  map prio      { type ifname . ifname : classid; }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname . oifname @drop_pairs drop
    iifname @isolated drop
    oifname @isolated drop
    meta priority set iifname . oifname map @prio
  }
}
add element bridge pvkr drop_pairs { "pa" . "pb" }
add element bridge pvkr prio { "pa" . "pb" : 1:10 }
NFT
tc qdisc add dev lo root netem delay 100ms && echo "netem=added"
ping -c3 -i 0.3 -q 127.0.0.1 | sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|avg=\1|p'
nft -f /tmp/t.nft && nft list set bridge pvkr drop_pairs | grep -q '"pa" . "pb"' && echo "nft=ok"
echo "root_entries=$(ls -A /root | wc -l) root_fs=$(stat -f -c %T /root)"
touch /root/x /var/lib/x /tmp/x /var/tmp/x && echo "tmpfs=writable"
ip netns add pvkr$$ && ip netns exec pvkr$$ true && ip netns del pvkr$$ && echo "netns=ok"
[ -c /dev/fuse ] && [ -c /dev/net/tun ] && echo "devices=ok"
modprobe br_netfilter && echo "modprobe=ok"
echo "hostfile=$(cat "$PVKR_W/hostfile")"
echo guest >"$PVKR_W/guestfile" && echo "tmpwrite=ok"
SH
)
echo host >"$w/hostfile"
out=$(PVKR_W=$w "$KR" -- bash -c "$guest_script" 2>"$w/err2")
rc=$?
check_eq "kernel_run: guest script exit code" 0 "$rc"
check_eq "kernel_run: tc qdisc add ... netem works under the stock kernel" netem=added "$(grep -o 'netem=added' <<<"$out")"
avg=$(sed -n 's/^avg=//p' <<<"$out")
echo "# ping over lo with netem delay 100ms: avg rtt ${avg:-?} ms"
if [ -n "$avg" ] && awk -v a="$avg" 'BEGIN { exit !(a >= 190 && a < 400) }'; then
	ok "kernel_run: netem delays ping on lo (avg rtt $avg ms, expected ~200)"
else not_ok "kernel_run: ping rtt with netem 100ms was [${avg:-none}] ms: $(head -c 300 "$w/err2")"; fi
check_eq "kernel_run: NOTES.md bridge nftables table loads" nft=ok "$(grep -o 'nft=ok' <<<"$out")"
check_eq "kernel_run: /root is an empty tmpfs (host's /root hidden)" "root_entries=0 root_fs=tmpfs" \
	"$(grep -o 'root_entries=.*' <<<"$out")"
check_eq "kernel_run: /tmp /root /var/tmp /var/lib are writable" tmpfs=writable "$(grep -o 'tmpfs=writable' <<<"$out")"
check_eq "kernel_run: ip netns works (/run/netns usable)" netns=ok "$(grep -o 'netns=ok' <<<"$out")"
check_eq "kernel_run: /dev/fuse and /dev/net/tun exist" devices=ok "$(grep -o 'devices=ok' <<<"$out")"
check_eq "kernel_run: modprobe from the stock module tree" modprobe=ok "$(grep -o 'modprobe=ok' <<<"$out")"
check_eq "kernel_run: environment and host /tmp files reach the guest" hostfile=host "$(grep -o 'hostfile=.*' <<<"$out")"
check_eq "kernel_run: guest writes to /tmp succeed" tmpwrite=ok "$(grep -o 'tmpwrite=ok' <<<"$out")"
check_fails "kernel_run: guest writes to /tmp stay in the guest" test -e "$w/guestfile"

# kr_watch PID: wait until kernel-run PID has started QEMU; sets KR_QEMU (the
# QEMU pid) and KR_TMP (its temp dir). Only this run's processes are watched:
# other kernel-runs may be going on beside it.
kr_watch() {
	local t q i
	KR_QEMU="" KR_TMP=""
	for i in $(seq 300); do
		t=$(pgrep -P "$1" -x timeout | head -n 1)
		q=${t:+$(pgrep -P "$t" | head -n 1)}
		[ -n "$q" ] && break
		sleep 0.1
	done
	[ -n "$q" ] || return 1
	KR_QEMU=$q
	KR_TMP=$(tr '\0' '\n' </proc/"$q"/cmdline | sed -n 's|^file:\(/tmp/pv-kernel-run\.[^/]*\)/console.log$|\1|p')
}
kr_gone() { ! kill -0 "$KR_QEMU" 2>/dev/null && [ -n "$KR_TMP" ] && [ ! -e "$KR_TMP" ]; }

# 3. a hung guest is killed at --timeout, leaving nothing
"$KR" --timeout 20 -- sleep 300 >/dev/null 2>"$w/err3" &
pid=$!
cleanup_add "kill $pid"
kr_watch $pid || not_ok "kernel_run: no QEMU seen for the timeout run"
rc=0
wait $pid || rc=$?
check_eq "kernel_run: --timeout kills a hung guest (exit 124)" 124 "$rc"
check "kernel_run: no QEMU and no temp dir left after timeout" kr_gone

# 4. Ctrl-C (SIGINT to kernel-run) stops the guest and cleans up. A background
# job of a script starts with SIGINT ignored; perl restores the default first.
perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV' "$KR" -- sleep 300 >/dev/null 2>&1 &
pid=$!
cleanup_add "kill $pid"
kr_watch $pid || not_ok "kernel_run: no QEMU seen for the Ctrl-C run"
sleep 2
kill -INT $pid
rc=0
wait $pid || rc=$?
check_eq "kernel_run: Ctrl-C exits 130" 130 "$rc"
check "kernel_run: no QEMU and no temp dir left after Ctrl-C" kr_gone
finish
