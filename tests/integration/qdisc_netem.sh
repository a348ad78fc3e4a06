#!/bin/bash
# netem for real: this machine's kernel has no sch_netem, so run the qdisc unit
# test (tests/unit/test_qdisc.c) under Debian's stock kernel through
# contrib/kernel-run, where its netem cases (latency raises ping RTT, 30% loss
# over 300 pings within binomial bounds, in-place changes) do not skip.
# Each cmocka result becomes one line here; the netem cases must not skip.
. "$(dirname "$0")/../lib.sh"
need_root qdisc_netem

krun=${PV_KERNEL_RUN:-$PV_TOP/contrib/kernel-run}
bin=$PV_BUILD/tests/test_qdisc
if [ ! -x "$krun" ]; then
	skipped "qdisc_netem: no contrib/kernel-run in this tree (set PV_KERNEL_RUN to one)"
	finish
fi
if [ ! -x "$bin" ]; then
	skipped "qdisc_netem: $bin not built (make tests)"
	finish
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
	skipped "qdisc_netem: qemu-system-x86_64 missing (contrib/install-deps)"
	finish
fi

log=$(mktemp /tmp/pv-qdisc-netem.XXXXXX)
cleanup_add "rm -f '$log'"
rc=0
CMOCKA_MESSAGE_OUTPUT=TAP "$krun" --timeout 400 -- "$bin" >"$log" 2>&1 || rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 125 ]; then
	not_ok "qdisc_netem: kernel-run failed ($rc): $(tail -3 "$log" | tr '\n' ' ')"
	finish
fi

kernel=$(sed -n 's/^# kernel: //p' "$log" | head -1)
echo "# guest kernel: ${kernel:-?}"
netem_ran=0
while IFS= read -r line; do
	case $line in
	"ok "*"# SKIP"* | "not ok "*"# SKIP"*)
		name=${line##*# SKIP }
		skipped "kernel-run $name: skipped in the guest" ;;
	"ok "*)
		name=${line#*- }
		ok "kernel-run $name"
		[[ $name == test_netem_* ]] && netem_ran=$((netem_ran + 1)) ;;
	"not ok "*)
		name=${line#*- }
		not_ok "kernel-run $name: $(grep -A3 -F "$line" "$log" | sed 1d | grep '^#' | tr '\n' ' ')" ;;
	"skipped - "*) echo "skipped - kernel-run ${line#skipped - }" ;;
	"#"*) echo "$line" ;;
	esac
done <"$log"

# the point of this script: netem was really exercised in the guest
if [ "$netem_ran" -ge 2 ]; then
	ok "qdisc_netem: netem latency and loss checked under ${kernel:-the guest kernel}"
else
	not_ok "qdisc_netem: netem cases did not run in the guest (kernel-run rc $rc): $(grep -v '^ok' "$log" | tail -3 | tr '\n' ' ')"
fi
finish
