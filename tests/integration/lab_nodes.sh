#!/bin/bash
# Netns nodes on a bridge: names resolve, addresses, counters, link flaps,
# detach, node shutdown and boot, two labs side by side.
. "$(dirname "$0")/../lib.sh"
need_root lab_nodes
lab=$(lab_name nodes)
lab_start "$lab" || { not_ok "daemon starts"; exit 1; }
ok "daemon starts and mounts $LAB"

echo "netns a" > "$LAB/ctl" && echo "netns b" > "$LAB/ctl" && echo "netns c" > "$LAB/ctl"
check_eq "netns node state" booted "$(cat "$LAB/a/state")"
check_eq "netns node kind" netns "$(cat "$LAB/a/kind")"
mkdir "$LAB/lan"
echo "a b c" > "$LAB/lan/attach"
check_eq "members" "a b c" "$(cat "$LAB/lan/members" | xargs)"
check_eq "ifname" "br-lan" "$(cat "$LAB/lan/ifname")"
check "bridge exists in the lab namespace" ip -n "pv-$lab" link show br-lan
check_eq "guest_ifname" eth0 "$(cat "$LAB/a/lan/guest_ifname")"
ipa=$(cat "$LAB/a/lan/ip"); ipb=$(cat "$LAB/b/lan/ip")
[ -n "$ipa" ] && [ "$ipa" != "$ipb" ] && ok "distinct addresses $ipa $ipb" || not_ok "addresses [$ipa] [$ipb]"
check "address configured inside a" bash -c "ip -n pv-$lab.a -o addr show eth0 | grep -q ' $ipa/24'"
check "mac matches inside a" bash -c "ip -n pv-$lab.a link show eth0 | grep -q '$(cat "$LAB/a/lan/mac")'"
tap=$(cat "$LAB/a/lan/tap")
check "port $tap is enslaved to br-lan" bash -c "ip -n pv-$lab link show $tap | grep -q 'master br-lan'"

check "a pings b by name" can a b
check "b pings a by name" can b a
check "c pings a by name" can c a
check "hosts lists every member" hosts_has a 'c\.lan' 
check "host /etc/hosts untouched" bash -c "! grep -q 'b.lan' /etc/hosts"

rx0=$(counter b lan rx_bytes); tx0=$(counter a lan tx_bytes)
nrun a "ping -c5 -i0.2 -s1000 b.lan" >/dev/null
rx1=$(counter b lan rx_bytes); tx1=$(counter a lan tx_bytes)
[ $((rx1 - rx0)) -ge 5000 ] && ok "b's rx_bytes grew by $((rx1 - rx0))" || not_ok "b rx_bytes $rx0 -> $rx1"
[ $((tx1 - tx0)) -ge 5000 ] && ok "a's tx_bytes grew by $((tx1 - tx0))" || not_ok "a tx_bytes $tx0 -> $tx1"
check "counters have every field" bash -c "[ \$(grep -cE '^(rx_bytes|tx_bytes|rx_packets|tx_packets|errors) [0-9]+$' '$LAB/a/lan/counters') = 5 ]"

echo down > "$LAB/a/lan/link"
check_eq "link reads down" down "$(cat "$LAB/a/lan/link")"
check "a sees carrier loss" bash -c "ip -n pv-$lab.a link show eth0 | grep -q NO-CARRIER"
check_fails "ping fails while the link is down" can a b
echo up > "$LAB/a/lan/link"
check "carrier back" bash -c "! ip -n pv-$lab.a link show eth0 | grep -q NO-CARRIER"
check "ping works after link up" heals a b

echo "c" > "$LAB/lan/detach"
check_eq "members after detach" "a b" "$(cat "$LAB/lan/members" | xargs)"
check_fails "c's port is gone" ip -n "pv-$lab" link show p3-1
check_fails "c's NIC directory is gone" test -e "$LAB/c/lan"
check_fails "a's hosts no longer lists c" hosts_has a 'c\.lan' 

# a second bridge: NICs in bridge-name order
mkdir "$LAB/data"
echo "a b" > "$LAB/data/attach"
check_eq "second NIC is eth1" eth1 "$(cat "$LAB/a/data/guest_ifname")"
check "a pings b on data" can a b data

echo shutdown > "$LAB/b/ctl"
check_eq "shutdown state" shutdown "$(cat "$LAB/b/state")"
check_fails "b's namespace is gone" test -e "/run/netns/pv-$lab.b"
check_eq "counters are zero while down" 0 "$(counter b lan rx_bytes)"
check_fails "a cannot reach b while it is down" can a b
echo boot > "$LAB/b/ctl"
check_eq "booted again" booted "$(cat "$LAB/b/state")"
check_eq "NICs in bridge-name order after boot" "eth0 eth1" "$(cat "$LAB/b/data/guest_ifname") $(cat "$LAB/b/lan/guest_ifname")"
check "a reaches b after its boot" heals a b

# a second lab with the same names, side by side
lab2=$(lab_name nodes2)
LAB1=$LAB
lab_start "$lab2" || not_ok "second daemon starts"
LAB2=$LAB
echo "netns a" > "$LAB2/ctl"; echo "netns b" > "$LAB2/ctl"; mkdir "$LAB2/lan"; echo "a b" > "$LAB2/lan/attach"
check "second lab: a pings b" can a b
echo "a b" > "$LAB2/lan/partition"
LAB=$LAB1
check "first lab unaffected by the second's partition" can a b
LAB=$LAB2
check_fails "second lab partitioned" can a b

echo "rm c" > "$LAB1/ctl"
check_fails "rm removes the node" test -e "$LAB1/c"
echo teardown > "$LAB2/ctl"
for i in $(seq 50); do mountpoint -q "$LAB2" || break; sleep 0.1; done
sleep 0.2
check_fails "teardown unmounts" mountpoint -q "$LAB2"
check_fails "teardown removes the namespace" test -e "/run/netns/pv-$lab2"
finish
