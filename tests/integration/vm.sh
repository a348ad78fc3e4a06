#!/bin/bash
# Real VMs: QEMU nodes booting the default guest (Debian's kernel, the host's
# /usr over 9p, the agent), wired by TAPs: names, hot-plug, two bridges,
# partitions, link flaps, run, console, a VM killed from outside, failures.
. "$(dirname "$0")/../lib.sh"
need_root vm
if ! command -v qemu-system-x86_64 >/dev/null; then skipped "vm: qemu-system-x86_64 not installed"; exit 0; fi
lab=$(lab_name vm)
PROVIUM_ROOT=$(mktemp -d /tmp/pv-test.XXXXXX); export PROVIUM_ROOT
cleanup_add "rm -rf '$PROVIUM_ROOT'"
cat > "$PROVIUM_ROOT/provium.toml" <<'TOML'
# a guest whose kernel cannot find its init: boot must fail with the console's last lines
[profiles.broken]
kind = "qemu"
cmdline = "rdinit=/no-such-init root=/dev/nowhere"
boot_timeout = 60

[profiles.big]
memory = "384M"
cpus = 2
TOML
LABD_ARGS="--config $PROVIUM_ROOT/provium.toml"
lab_start "$lab" || { not_ok "daemon starts"; exit 1; }
check "features say tcg here" grep -q '^tcg yes' "$LAB/features"

echo "vm a" > "$LAB/ctl"; echo "vm b big" > "$LAB/ctl"
check_eq "vm kind" qemu "$(cat "$LAB/a/kind")"
check_eq "vm state before boot" created "$(cat "$LAB/a/state")"
check_eq "profile" big "$(cat "$LAB/b/profile")"
mkdir "$LAB/lan"
echo "a" > "$LAB/lan/attach"              # attached before boot: a NIC at launch
start=$(date +%s.%N)
check "a boots" bash -c "echo boot > '$LAB/a/ctl'"
echo "# boot to agent-ready: $(echo "$(date +%s.%N) - $start" | bc) s"
check_eq "a is booted" booted "$(cat "$LAB/a/state")"
check "b boots" bash -c "echo boot > '$LAB/b/ctl'"
check "profile memory and cpus reach QEMU" bash -c "pgrep -af 'qemu-system.*-name b' | grep -q -- '-m 384' && pgrep -af 'qemu-system.*-name b' | grep -q -- '-smp 2'"
echo "b" > "$LAB/lan/attach"              # attached after boot: hot-plug
check_eq "hot-plugged NIC is eth0" eth0 "$(cat "$LAB/b/lan/guest_ifname")"
check "a pings b by name" can a b
check "b pings a by name" can b a
check "b's NIC has the assigned address" bash -c "nrun b 'ip -o -4 addr show eth0' | grep -q '$(cat "$LAB/b/lan/ip")/24'"
check "guest /etc/hosts lists a.lan" hosts_has b 'a\.lan'
check "the guest runs the stock kernel" bash -c "nrun a 'uname -r' | grep -q amd64"
check "the host's /home is not in the guest" bash -c "nrun a 'test ! -e /home && test ! -e /etc/shadow && echo clean' | grep -q clean"
check "console.log holds the kernel banner" grep -q "Linux version" "$LAB/a/console.log"

# a second bridge: NICs in bridge-name order (data before lan? no: eth order
# follows the order of bridge names when the NICs are made)
mkdir "$LAB/data"
echo "a b" > "$LAB/data/attach"
check_eq "a's second NIC" eth1 "$(cat "$LAB/a/data/guest_ifname")"
check "a pings b on data" can a b data
check "b pings a on data" can b a data
check "guest ifname really is eth1" bash -c "nrun a 'cat /sys/class/net/eth1/address' | grep -q '$(cat "$LAB/a/data/mac")'"

# partition and heal
echo "a b" > "$LAB/lan/partition"
check_fails "partition cuts a -> b" can a b
check_fails "partition cuts b -> a" can b a
check "data is not partitioned" can a b data
echo none > "$LAB/lan/partition"
check "heal restores a -> b" heals a b

# link flap: the guest sees carrier loss
echo down > "$LAB/a/lan/link"
check_eq "carrier 0 while down" 0 "$(nrun a 'cat /sys/class/net/eth0/carrier' | sed -n 's/.*"stdout":"\([01]\).*/\1/p')"
out=$(nrun a "ping -c1 -W1 b.lan")
check "ping exits 1 while down" grep -q '"exit_code":1' <<<"$out"
echo up > "$LAB/a/lan/link"
check "ping exits 0 after up" heals a b

# run
check "run: exit code" grep -q '"exit_code":3' <<<"$(nrun a 'exit 3')"
check "run: stderr" grep -q '"stderr":"oops\\n"' <<<"$(nrun a 'echo oops >&2')"
t0=$(date +%s)
out=$(nrun a '{"cmd": "sleep 30", "timeout": 1}')
check "run: a timeout kills" grep -q '"status":"timed_out"' <<<"$out"
[ $(( $(date +%s) - t0 )) -lt 10 ] && ok "run: timeout returns promptly" || not_ok "run: timeout took $(( $(date +%s) - t0 )) s"
check "run: the timed-out process is gone" bash -c "nrun a 'pgrep -x sleep || echo none' | grep -q none"
check "run: a signal" grep -q '"status":"signalled","signal":15' <<<"$(nrun a 'kill -TERM $$')"
check "run: argv and stdin" grep -q '"stdout":"hello"' <<<"$(nrun a '{"argv": ["cat"], "stdin": "hello"}')"

# detach unplugs
echo "b" > "$LAB/data/detach"
check_fails "detach removes b's data port" ip -n "pv-$lab" link show p2-2
check "b's guest lost the NIC" bash -c "for i in 1 2 3 4 5 6 7 8 9 10; do nrun b 'ls /sys/class/net' | grep -q eth1 || exit 0; sleep 0.5; done; exit 1"

# a VM killed from outside turns dead within a second and its port goes
pid=$(pgrep -f "qemu-system.*-name b( |$)" | head -1)
kill -9 "$pid"
sleep 1
check_eq "killed VM is dead" dead "$(cat "$LAB/b/state")"
check "the error says why" bash -c "tail -n1 '$LAB/errors' | grep -q 'VM .b. died: QEMU killed by signal 9'"
check_fails "its port is gone" ip -n "pv-$lab" link show p2-1
check "it boots again" bash -c "echo boot > '$LAB/b/ctl'"
check "and answers" heals a b

# a guest that never reaches its agent fails boot with the console's last lines
echo "vm c broken" > "$LAB/ctl"
t0=$(date +%s)
expect_error "broken guest fails boot" ECHILD "echo boot > '$LAB/c/ctl'"
[ $(( $(date +%s) - t0 )) -lt 55 ] && ok "a guest that panics fails boot before the timeout" || not_ok "boot failure took $(( $(date +%s) - t0 )) s"
check "the error quotes the console" bash -c "tail -n1 '$LAB/errors' | grep -q 'console.log ends:.*Kernel panic'"
check_eq "broken guest is dead" dead "$(cat "$LAB/c/state")"
echo "rm c" > "$LAB/ctl"

# shutdown powers off; teardown leaves no QEMU
check "shutdown" bash -c "echo shutdown > '$LAB/a/ctl'"
check_eq "shutdown state" shutdown "$(cat "$LAB/a/state")"
check_fails "a's QEMU is gone" pgrep -f "qemu-system.*-name a( |$)"
lab_stop "$lab"
check_fails "teardown leaves no QEMU" pgrep -f "qemu-system.*$PROVIUM_ROOT"
finish
