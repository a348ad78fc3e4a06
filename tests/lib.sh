# Shared helpers for integration tests (bash). Source it first:
#   . "$(dirname "$0")/../lib.sh"
# Report with ok/not_ok/skipped; every test cleans up through `cleanup_add`,
# which runs on exit, also when a test fails or is interrupted.
set -u
PV_TOP=${PV_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PV_BUILD=${PV_BUILD:-$PV_TOP/build}
LABD=$PV_BUILD/provium-labd
_pv_fails=0
_pv_cleanups=()

ok()      { echo "ok - $*"; }
not_ok()  { echo "not ok - $*"; _pv_fails=$((_pv_fails + 1)); }
skipped() { echo "skipped - $*"; }
# check NAME CMD...: ok if CMD succeeds
check()   { local n=$1; shift; if "$@" >/dev/null 2>&1; then ok "$n"; else not_ok "$n"; fi; }
# check_fails NAME CMD...: ok if CMD fails
check_fails() { local n=$1; shift; if "$@" >/dev/null 2>&1; then not_ok "$n (succeeded)"; else ok "$n"; fi; }
# check_eq NAME EXPECTED ACTUAL
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected [$2] got [$3]"; fi; }

cleanup_add() { _pv_cleanups+=("$*"); }
_pv_cleanup() {
	local i
	for ((i = ${#_pv_cleanups[@]} - 1; i >= 0; i--)); do eval "${_pv_cleanups[$i]}" >/dev/null 2>&1; done
}
trap _pv_cleanup EXIT
trap 'exit 130' INT TERM

need_root() {
	if [ "$(id -u)" != 0 ]; then skipped "$1: needs root"; exit 0; fi
}

# lab_start NAME: start a daemon for lab NAME under a temporary root; sets
# PROVIUM_ROOT and LAB (the mount point). Stops it on exit.
lab_start() {
	local name=$1
	if [ -z "${PROVIUM_ROOT:-}" ]; then
		PROVIUM_ROOT=$(mktemp -d /tmp/pv-test.XXXXXX)
		export PROVIUM_ROOT
		cleanup_add "rm -rf '$PROVIUM_ROOT'"
	fi
	cleanup_add "lab_stop '$name'"
	"$LABD" ${LABD_ARGS:-} "$name" || return 1
	LAB=$PROVIUM_ROOT/$name
	export LAB
}

lab_stop() {
	local name=$1 mnt=$PROVIUM_ROOT/$1 i
	if mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	# wait for the daemon to finish its teardown, then make sure
	for i in $(seq 100); do
		pgrep -f "provium-labd( .*)? $name\$" >/dev/null || break
		sleep 0.1
	done
	"$LABD" --gc "$name" >/dev/null 2>&1 || true
}

# unique lab name for this run
lab_name() { echo "${1:-t}$$"; }

# hosts_has NODE NAME: NODE's /etc/hosts lists NAME
hosts_has() { nrun "$1" "cat /etc/hosts" | grep -q "$2"; }
# nrun NODE CMD: run CMD in netns node NODE through the lab's run file; prints
# the JSON result.
nrun() { local node=$1; shift; exec 3<>"$LAB/$node/run"; printf '%s' "$*" >&3; cat <&3; exec 3>&-; }
# nrun_ok NODE CMD: succeeds when the command exited 0
nrun_ok() { nrun "$@" | grep -q '"exit_code": *0[,}]'; }

finish() { exit 0; }

# can FROM TO [BRIDGE]: FROM pings TO by name once
can() { nrun_ok "$1" "ping -c1 -W1 $2.${3:-lan}"; }
# heals FROM TO [BRIDGE]: FROM reaches TO within 5 s (after a heal, neighbour
# caches re-converge, as the product documentation says)
heals() { local i; for i in 1 2 3 4 5; do can "$@" && return 0; done; return 1; }
# counter NODE BRIDGE NAME: one value of NODE's counters on BRIDGE
counter() { awk -v k="$3" '$1 == k { print $2 }' "$LAB/$1/$2/counters"; }
# expect_errno NAME ERRNO_NAME CMD...: CMD (a shell string) fails with that errno
# in the errors file's last line
expect_error() {
	local name=$1 code=$2 cmd=$3 before after
	before=$(wc -l < "$LAB/errors")
	if (eval "$cmd") >/dev/null 2>&1; then not_ok "$name: succeeded"; return; fi
	after=$(wc -l < "$LAB/errors")
	if [ "$after" -le "$before" ]; then not_ok "$name: nothing in errors"; return; fi
	if tail -n1 "$LAB/errors" | grep -q ": $code: "; then ok "$name"
	else not_ok "$name: expected $code, errors says: $(tail -n1 "$LAB/errors")"; fi
}

# helpers usable inside `check NAME bash -c "..."`
export -f nrun nrun_ok can heals hosts_has counter
