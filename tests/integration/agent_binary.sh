#!/bin/bash
# provium-agent as a binary: static (it starts before the guest's library path
# exists), refuses bad arguments, and waits for a missing port without
# spinning or exiting (as PID 1 it must never exit).
. "$(dirname "$0")/../lib.sh"
AGENT=$PV_BUILD/provium-agent
if [ ! -x "$AGENT" ]; then skipped "agent_binary: $AGENT not built"; exit 0; fi

tmp=$(mktemp -d /tmp/pvag-bin.XXXXXX)
cleanup_add "rm -rf '$tmp'"

if ldd "$AGENT" 2>&1 | grep -q "not a dynamic executable"; then
	ok "agent is statically linked"
else
	not_ok "agent is statically linked: ldd says $(ldd "$AGENT" 2>&1 | head -1)"
fi

rc=0
"$AGENT" --bogus 2>"$tmp/usage" || rc=$?
check_eq "bad argument exits 2" 2 "$rc"
check "bad argument prints usage" grep -q "usage: provium-agent" "$tmp/usage"

"$AGENT" --port "$tmp/no-such-port" --etc "$tmp" 2>"$tmp/log" &
pid=$!
cleanup_add "kill $pid; wait $pid"
sleep 1
check "missing port: still running" kill -0 "$pid"
check_eq "missing port: one start line, one waiting line" 2 "$(wc -l < "$tmp/log")"
check "missing port: says what it waits for" grep -q "no-such-port.*waiting" "$tmp/log"
# CPU time in clock ticks (utime + stime): polling every 200 ms costs ~nothing
ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
if [ "$ticks" -le 10 ]; then ok "missing port: no busy loop ($ticks ticks in 1 s)"
else not_ok "missing port: no busy loop: $ticks ticks in 1 s"; fi
finish
