#!/bin/bash
# Bad input: every malformed, unknown, duplicate or oversized write gets an
# errno and a one-line message in `errors` (and in a transaction's reply),
# and changes nothing.
. "$(dirname "$0")/../lib.sh"
need_root lab_errors
lab=$(lab_name err)
lab_start "$lab" || { not_ok "daemon starts"; exit 1; }
echo "netns a" > "$LAB/ctl"; echo "netns b" > "$LAB/ctl"; mkdir "$LAB/lan"; echo "a b" > "$LAB/lan/attach"
snapshot() { cat "$LAB/state.json"; }
before=$(snapshot)

expect_error "uppercase name" EINVAL "echo 'netns Bad' > '$LAB/ctl'"
expect_error "name with a slash" EINVAL "echo 'netns a/b' > '$LAB/ctl'"
expect_error "name .." EINVAL "echo 'netns ..' > '$LAB/ctl'"
expect_error "33-char name" EINVAL "echo 'netns $(printf 'x%.0s' $(seq 33))' > '$LAB/ctl'"
expect_error "name starting with -" EINVAL "echo 'netns -x' > '$LAB/ctl'"
expect_error "reserved name" EINVAL "echo 'netns ctl' > '$LAB/ctl'"
expect_error "duplicate node" EEXIST "echo 'netns a' > '$LAB/ctl'"
expect_error "node named like a bridge" EEXIST "echo 'netns lan' > '$LAB/ctl'"
check_fails "bridge named like a node" mkdir "$LAB/a"
expect_error "garbage on ctl" EINVAL "echo 'frobnicate now' > '$LAB/ctl'"
expect_error "rm of an unknown node" ENOENT "echo 'rm zz' > '$LAB/ctl'"
expect_error "attach of an unknown node" ENOENT "echo 'zz' > '$LAB/lan/attach'"
expect_error "attach of a good and a bad name" ENOENT "echo 'c zz' > '$LAB/lan/attach'"
expect_error "attach of an attached node" EEXIST "echo 'a' > '$LAB/lan/attach'"
expect_error "attach of a name twice" EINVAL "echo 'netns c' > '$LAB/ctl'; echo 'c c' > '$LAB/lan/attach'"
expect_error "detach of a non-member" ENOENT "echo 'c' > '$LAB/lan/detach'"
expect_error "attach with nothing" EINVAL "echo '' > '$LAB/lan/attach'"
expect_error "directional partition to itself" EINVAL "echo 'a -> a' > '$LAB/lan/partition'"
expect_error "symmetric partition with itself" EINVAL "echo 'a a' > '$LAB/lan/partition'"
expect_error "partition garbage" EINVAL "echo 'a => b' > '$LAB/lan/partition'"
expect_error "partition with a bad name" EINVAL "echo 'a B' > '$LAB/lan/partition'"
expect_error "isolate an unknown node" ENOENT "echo 'zz' > '$LAB/lan/isolated'"
expect_error "isolate garbage" EINVAL "echo 'a b' > '$LAB/lan/isolated'"
expect_error "link garbage" EINVAL "echo 'sideways' > '$LAB/a/lan/link'"
expect_error "node ctl garbage" EINVAL "echo 'explode' > '$LAB/a/ctl'"
expect_error "rmdir of a bridge with members" EBUSY "rmdir '$LAB/lan'"
expect_error "oversized write" EINVAL "head -c 70000 /dev/zero | tr '\\\\0' a | dd of='$LAB/lan/attach' bs=70000 status=none"
expect_error "a NUL byte" EINVAL "printf 'a\\\\0b' > '$LAB/lan/partition'"
expect_error "empty run" EINVAL "echo '' > '$LAB/a/run'"
check_fails "unknown bridge file" test -e "$LAB/lan/nonsense"
check_fails "mkdir below a bridge" mkdir "$LAB/lan/sub"

echo "rm c" > "$LAB/ctl"
after=$(snapshot)
check_eq "nothing changed" "$before" "$after"
check "still works after all that" can a b

# every error line is one line naming the path and the input
check "errors lines name path and input" grep -q '/lan/attach: "c zz": ENOENT: no node named' "$LAB/errors"
check "the message names the fix" bash -c "grep -q 'create it first' '$LAB/errors'"
# a transaction file returns the message on the same descriptor
reply=$(exec 3<>"$LAB/ctl"; echo "netns Bad" >&3 2>/dev/null; cat <&3)
check "ctl reply carries the error" bash -c "echo '$reply' | grep -q '^error: EINVAL: invalid name'"
reply=$(exec 3<>"$LAB/ctl"; echo "netns e" >&3; cat <&3)
check_eq "ctl reply on success" ok "$reply"
check_eq "errors file has one line per error" "$(grep -c . "$LAB/errors")" "$(wc -l < "$LAB/errors")"
finish
