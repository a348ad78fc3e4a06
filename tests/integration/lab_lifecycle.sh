#!/bin/bash
# Daemon lifecycle: SIGTERM, SIGKILL then --gc, restart over a dead lab,
# access control with --group. Nothing may be left behind.
. "$(dirname "$0")/../lib.sh"
need_root lab_lifecycle
PROVIUM_ROOT=$(mktemp -d /tmp/pv-test.XXXXXX); export PROVIUM_ROOT
chmod 755 "$PROVIUM_ROOT" # others may walk to the mount; the mount decides
cleanup_add "rm -rf '$PROVIUM_ROOT'"

# leftovers LAB: what of lab LAB is still on the host
leftovers() {
	local l=$1
	ip netns list | grep -E "^pv-$l(\.| |$)" | awk '{print $1}'
	findmnt -rn -o TARGET "$PROVIUM_ROOT/$l" 2>/dev/null
	pgrep -f "provium-labd( .*)? $l\$"
	pgrep -f "sleep 4242" 
}

populate() { # a lab with two nodes on a bridge, a partition and a process
	echo "netns a" > "$LAB/ctl"; echo "netns b" > "$LAB/ctl"
	mkdir "$LAB/lan"; echo "a b" > "$LAB/lan/attach"; echo "a -> b" > "$LAB/lan/partition"
	nrun a "sleep 4242 >/dev/null 2>&1 &" >/dev/null
}

# SIGTERM
lab=$(lab_name life)
lab_start "$lab" || { not_ok "daemon starts"; exit 1; }
populate
check "a process runs in node a" pgrep -f "sleep 4242"
pid=$(pgrep -f "provium-labd( .*)? $lab\$")
kill -TERM "$pid"
for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check_eq "SIGTERM leaves nothing" "" "$(leftovers "$lab")"
check_fails "SIGTERM removes the journal" test -e "$PROVIUM_ROOT/.state/$lab.json"

# SIGINT
lab=$(lab_name int)
lab_start "$lab" || not_ok "daemon starts"
populate
pid=$(pgrep -f "provium-labd( .*)? $lab\$")
kill -INT "$pid"
for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check_eq "SIGINT leaves nothing" "" "$(leftovers "$lab")"

# SIGKILL, then --gc
lab=$(lab_name kill)
lab_start "$lab" || not_ok "daemon starts"
populate
pid=$(pgrep -f "provium-labd( .*)? $lab\$")
check "journal lists the node namespaces" grep -q "pv-$lab.a" "$PROVIUM_ROOT/.state/$lab.json"
kill -KILL "$pid"
sleep 0.3
check "SIGKILL leaves the namespace" test -e "/run/netns/pv-$lab"
"$LABD" --gc "$lab"
check_eq "--gc removes namespaces, mount and processes" "" "$(leftovers "$lab")"
check_fails "--gc removes the journal" test -e "$PROVIUM_ROOT/.state/$lab.json"
check_fails "--gc removes the mount point" test -e "$PROVIUM_ROOT/$lab"

# SIGKILL, then a new daemon of the same lab starts clean
lab_start "$lab" || not_ok "daemon starts"
populate
pid=$(pgrep -f "provium-labd( .*)? $lab\$")
kill -KILL "$pid"; sleep 0.3
lab_start "$lab" && ok "a new daemon starts over a killed one" || not_ok "restart over a killed lab"
check_eq "the new lab starts empty" "" "$(ls "$LAB" | grep -vE '^(ctl|errors|features|state.json)$' | xargs)"
check_fails "the old process is gone" pgrep -f "sleep 4242"
echo "netns a" > "$LAB/ctl"; echo "netns b" > "$LAB/ctl"; mkdir "$LAB/lan"; echo "a b" > "$LAB/lan/attach"
check "the new lab works" can a b
pid=$(pgrep -f "provium-labd( .*)? $lab\$")
expect=$(ip netns list | grep -c "^pv-$lab")
check_fails "--gc leaves a running lab alone" "$LABD" --gc "$lab"
check_eq "running lab untouched" "$expect" "$(ip netns list | grep -c "^pv-$lab")"
lab_stop "$lab"
check_eq "unmount leaves nothing" "" "$(leftovers "$lab")"

# profiles: provium.toml in the directory the daemon starts in
lab=$(lab_name prof)
mkdir -p "$PROVIUM_ROOT/conf"
cat > "$PROVIUM_ROOT/conf/provium.toml" <<'TOML'
# a netns profile: `vm NAME light` declares a netns node that waits for boot
[profiles.light]
kind = "netns"
TOML
(cd "$PROVIUM_ROOT/conf" && lab_start "$lab") || not_ok "daemon starts in a directory with provium.toml"
LAB=$PROVIUM_ROOT/$lab
cleanup_add "lab_stop '$lab'"
check "a profile from ./provium.toml" bash -c "echo 'vm n light' > '$LAB/ctl'"
check_eq "its kind" netns "$(cat "$LAB/n/kind")"
check_eq "its profile" light "$(cat "$LAB/n/profile")"
check_eq "declared, not booted" created "$(cat "$LAB/n/state")"
echo boot > "$LAB/n/ctl"
check_eq "booted on boot" booted "$(cat "$LAB/n/state")"
expect_error "an unknown profile" ENOENT "echo 'vm m nosuch' > '$LAB/ctl'"
expect_error "a bad vm option" EINVAL "echo 'vm m light speed=9' > '$LAB/ctl'"
lab_stop "$lab"
printf '[profiles.bad]\nkind = "xen"\n' > "$PROVIUM_ROOT/conf/bad.toml"
check_fails "a bad config is refused at start" "$LABD" --config "$PROVIUM_ROOT/conf/bad.toml" "$lab"
check "and says where" bash -c "'$LABD' --config '$PROVIUM_ROOT/conf/bad.toml' '$lab' 2>&1 | grep -q 'bad.toml:2'"

# a second daemon for a running lab is refused
lab=$(lab_name dup)
lab_start "$lab" || not_ok "daemon starts"
check_fails "a second daemon for the same lab is refused" "$LABD" "$lab"
check "the first one still serves" test -e "$LAB/ctl"
lab_stop "$lab"

# access: root only by default; --group opens it to that group
lab=$(lab_name perm)
lab_start "$lab" || not_ok "daemon starts"
check_fails "nobody cannot read a root-only lab" setpriv --reuid=65534 --regid=65534 --clear-groups cat "$LAB/state.json"
lab_stop "$lab"
cleanup_add "lab_stop '$lab'"
"$LABD" --group nogroup "$lab" || not_ok "daemon starts with --group"
check "nogroup member can read" setpriv --reuid=65534 --regid=65534 --clear-groups cat "$LAB/state.json"
check "nogroup member can write" setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "echo 'netns g' > '$LAB/ctl'"
check "the write took effect" test -d "$LAB/g"
check_fails "others cannot read" setpriv --reuid=65534 --regid=65533 --clear-groups cat "$LAB/state.json"
check_eq "mode bits" "-rw-rw---- root nogroup" "$(stat -c '%A %U %G' "$LAB/ctl")"
lab_stop "$lab"
check_fails "bad --group is refused" "$LABD" --group no-such-group-pv "$lab"
check_fails "invalid lab name is refused" "$LABD" "Bad/Name"
finish
