#!/bin/bash
# Partitions (symmetric, directional, all/none) and isolation on netns nodes,
# as users see them: pings that really fail and recover.
. "$(dirname "$0")/../lib.sh"
need_root lab_partition
lab=$(lab_name part)
lab_start "$lab" || { not_ok "daemon starts"; exit 1; }
P=$LAB/lan/partition

# a symmetric partition written before the nodes exist is enforced once they
# are attached and up
mkdir "$LAB/lan"
echo "a b" > "$P"
check_eq "early partition recorded" "a b" "$(cat "$P")"
for n in a b c; do echo "netns $n" > "$LAB/ctl"; done
echo "a b c" > "$LAB/lan/attach"
check_fails "early partition cuts a -> b" can a b
check_fails "early partition cuts b -> a" can b a
check "a -> c still works" can a c
check "c -> b still works" can c b
echo "-a b" > "$P"
check_eq "partition lifted" "" "$(cat "$P")"
check "a -> b after heal" heals a b
check "b -> a after heal" heals b a

# written as "b a": the same symmetric pair
echo "b a" > "$P"
check_eq "symmetric pair reads sorted" "a b" "$(cat "$P")"
echo "-b a" > "$P"
check_eq "lifted in either order" "" "$(cat "$P")"

# directional: a -> b drops a's frames to b only
echo "a -> b" > "$P"
check_eq "directional reads back" "a -> b" "$(cat "$P")"
check_fails "a -> b cut" can a b
rx_a0=$(counter a lan rx_packets); tx_a0=$(counter a lan tx_packets); rx_b0=$(counter b lan rx_packets)
nrun b "ping -c10 -i0.2 -W1 a.lan" >/dev/null
rx_a1=$(counter a lan rx_packets); tx_a1=$(counter a lan tx_packets); rx_b1=$(counter b lan rx_packets)
[ $((rx_a1 - rx_a0)) -ge 10 ] && ok "b's frames still reach a (+$((rx_a1 - rx_a0)))" || not_ok "a received $((rx_a1 - rx_a0)) frames from b"
[ $((tx_a1 - tx_a0)) -ge 10 ] && ok "a answers (+$((tx_a1 - tx_a0)))" || not_ok "a sent $((tx_a1 - tx_a0))"
[ $((rx_b1 - rx_b0)) -lt 5 ] && ok "a's answers do not reach b (+$((rx_b1 - rx_b0)))" || not_ok "b received $((rx_b1 - rx_b0)) frames"
check "a -> c unaffected" can a c
check "c -> b unaffected" can c b
echo "-a -> b" > "$P"
check "a -> b after lifting" heals a b

# a directional partition needs both ends attached and up
echo "netns d" > "$LAB/ctl"
expect_error "directional to an unattached node" ENOENT "echo 'a -> d' > '$P'"
check "the error says to attach first" bash -c "tail -n1 '$LAB/errors' | grep -q 'attach first'"
echo shutdown > "$LAB/b/ctl"
expect_error "directional to a node that is down" ENOENT "echo 'a -> b' > '$P'"
echo boot > "$LAB/b/ctl"
# lifting a directional partition whose endpoint was detached is a no-op
echo "a -> b" > "$P"
echo "b" > "$LAB/lan/detach"
check_eq "detach removed the partition" "" "$(cat "$P")"
check "lifting it afterwards is a no-op" bash -c "echo '-a -> b' > '$P'"
echo "b" > "$LAB/lan/attach"

# all / none
echo all > "$P"
check_eq "all partitions every pair" 3 "$(wc -l < "$P")"
check_fails "all: a -> b" can a b
check_fails "all: b -> c" can b c
check_fails "all: c -> a" can c a
echo none > "$P"
check_eq "none lifts every partition" "" "$(cat "$P")"
check "none: a -> b" heals a b
check "none: b -> c" heals b c

# several lines in one write(2), applied whole (bash's printf writes line by
# line; cat of a here-document writes once)
cat > "$P" <<'EOF'
a b
b -> c
EOF
check_eq "two lines recorded" "a b|b -> c" "$(paste -sd'|' "$P")"
expect_error "a bad line rejects the whole write" ENOENT "printf 'a c\nzz -> a\n' | dd of='$P' bs=64k status=none"
check_eq "nothing of it recorded" "a b|b -> c" "$(paste -sd'|' "$P")"
echo none > "$P"

# isolation
echo a > "$LAB/lan/isolated"
check_eq "isolated reads back" a "$(cat "$LAB/lan/isolated")"
check_fails "isolated a cannot reach b" can a b
check_fails "c cannot reach isolated a" can c a
check "b and c carry on" can b c
echo "-a" > "$LAB/lan/isolated"
check_eq "unisolated" "" "$(cat "$LAB/lan/isolated")"
check "a reaches b again" heals a b

# the kernel holds what the files say: the lab's nft sets
echo "a b" > "$P"
check "nft drop set holds the pair" bash -c "ip netns exec pv-$lab nft list set bridge provium drop_pairs | grep -q '\"p1-1\" . \"p2-1\"'"
echo "b" > "$LAB/lan/detach"
check "detach empties the drop set" bash -c "! ip netns exec pv-$lab nft list set bridge provium drop_pairs | grep -q p2-1"
finish
