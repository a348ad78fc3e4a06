#!/bin/bash
# guest/mkguest and guest/init: the default guest image (Debian's stock kernel,
# busybox initramfs, the host's /usr over 9p). Builds (the first run downloads
# the kernel through apt), checks the cache, then boots the image under TCG in
# its no-agent fallback mode and reads the console.
. "$(dirname "$0")/../lib.sh"
need_root guest_image
MK=$PV_TOP/guest/mkguest
if ! command -v qemu-system-x86_64 >/dev/null; then
	skipped "guest_image: qemu-system-x86_64 missing (contrib/install-deps)"; exit 0
fi
w=$(mktemp -d /tmp/pv-guestimg.$$.XXXXXX)
cleanup_add "rm -rf '$w'"
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc | sed 's/^\./0./'; }

# 1. build (or find) the image without agent; time it
t0=$(now)
if ! "$MK" --agent none >"$w/first" 2>"$w/first.err"; then
	not_ok "guest_image: mkguest failed: $(tail -n 3 "$w/first.err")"; exit 0
fi
t1=$(now)
grep '^mkguest:' "$w/first.err" | sed 's/^/# /'
echo "# mkguest first run: $(secs "$t0" "$t1") s"
ok "guest_image: mkguest builds"
eval "$(grep -E '^(kernel|initrd|modules)=' "$w/first")"
check "guest_image: kernel exists" test -f "$kernel"
check "guest_image: initrd is gzip" gzip -t "$initrd"
check "guest_image: modules dir has modules.dep" test -f "$modules/modules.dep"

t0=$(now)
"$MK" --agent none >"$w/second" 2>"$w/second.err"
t1=$(now)
echo "# mkguest cache hit: $(secs "$t0" "$t1") s"
check_eq "guest_image: second run is a cache hit (same paths)" "$(cat "$w/first")" "$(cat "$w/second")"
check_eq "guest_image: cache hit builds nothing" "" "$(cat "$w/second.err")"
if awk -v s="$(secs "$t0" "$t1")" 'BEGIN { exit !(s < 3) }'; then ok "guest_image: cache hit is fast"
else not_ok "guest_image: cache hit took $(secs "$t0" "$t1") s"; fi

# 2. a changed agent gives a new initramfs over the same kernel; concurrent
# runs agree (the cache is locked)
printf '#!/bin/sh\necho one\n' >"$w/agent"
a=$("$MK" --agent "$w/agent" 2>/dev/null | sed -n 's/^initrd=//p')
cleanup_add "rm -rf '$(dirname "$a")'"
printf '#!/bin/sh\necho two\n' >"$w/agent"
"$MK" --agent "$w/agent" >"$w/c1" 2>/dev/null &
"$MK" --agent "$w/agent" >"$w/c2" 2>/dev/null &
wait
b=$(sed -n 's/^initrd=//p' "$w/c1")
cleanup_add "rm -rf '$(dirname "$b")'"
if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && [ "$a" != "$initrd" ]; then ok "guest_image: a changed agent rebuilds the initramfs"
else not_ok "guest_image: agent change: [$a] vs [$b]"; fi
check_eq "guest_image: concurrent runs agree" "$(cat "$w/c1")" "$(cat "$w/c2")"
check_eq "guest_image: rebuild reuses the kernel" "kernel=$kernel" "$(grep '^kernel=' "$w/c1")"
check "guest_image: concurrent build left a valid initrd" gzip -t "$b"
if zcat "$b" | cpio -i --quiet --to-stdout provium/agent 2>/dev/null | grep -q two; then ok "guest_image: initrd carries the agent"
else not_ok "guest_image: agent missing from initrd"; fi

# 3. boot the image with a fallback command (no agent): markers on the console
cat >"$w/script" <<'SH'
echo PV-BEGIN
echo "PV-UNAME $(uname -r)"
ping -V | head -n 1 | sed 's/^/PV-PING /'
for p in /etc/shadow /home /root/.bashrc; do [ -e $p ] && echo "PV-EXISTS $p" || echo "PV-ABSENT $p"; done
echo "PV-ROOT $(ls -A /root | wc -l) $(stat -f -c %T /root)"
echo "PV-HOSTNAME $(hostname)"
[ -L /dev/virtio-ports/org.provium.agent ] && echo "PV-PORT ok"
modprobe sch_netem && echo "PV-MODPROBE ok"
echo PV-END
SH
b64=$(base64 -w0 <"$w/script")
con=$w/console.log
t0=$(now)
qemu-system-x86_64 -name "provium-test-guest-$$" -accel tcg -m 512 -smp 1 \
	-nodefaults -no-user-config -nographic -no-reboot -monitor none -serial "file:$con" \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 provium.name=pvg$$ provium.run64=$b64" \
	-virtfs local,path=/usr,mount_tag=usr,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$modules,mount_tag=modules,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-serial-pci -chardev null,id=agent \
	-device virtserialport,chardev=agent,name=org.provium.agent </dev/null >"$w/qemu.log" 2>&1 &
qpid=$!
cleanup_add "kill $qpid"
for i in $(seq 1200); do kill -0 $qpid 2>/dev/null || break; sleep 0.1; done
kill $qpid 2>/dev/null && not_ok "guest_image: guest did not power off within 120 s"
wait $qpid 2>/dev/null
t1=$(now)
up=$(sed -n 's/.*stage 1 on .*, \([0-9.]*\) s after boot.*/\1/p' "$con")
ready=$(sed -n 's/.*root ready at \([0-9.]*\) s.*/\1/p' "$con")
echo "# boot under TCG: initramfs /init at ${up:-?} s guest uptime, root ready at ${ready:-?} s, whole run $(secs "$t0" "$t1") s wall"
field() { grep -a "^$1" "$con" | head -n 1 | tr -d '\r'; }
if grep -aq 'Linux version 6\.1\..*Debian' "$con"; then ok "guest_image: console shows the Debian kernel banner"
else not_ok "guest_image: no Debian kernel banner on the console"; fi
check_eq "guest_image: fallback command ran to the end" "PV-END" "$(field PV-END)"
if field PV-PING | grep -q iputils; then ok "guest_image: host's /usr tools run in the guest (ping -V)"
else not_ok "guest_image: ping -V: [$(field PV-PING)]"; fi
check_eq "guest_image: /etc/shadow does not exist" "PV-ABSENT /etc/shadow" "$(field 'PV-[A-Z]* /etc/shadow')"
check_eq "guest_image: /home does not exist" "PV-ABSENT /home" "$(field 'PV-[A-Z]* /home')"
check_eq "guest_image: host's /root is not visible (/root is an empty tmpfs)" "PV-ROOT 0 tmpfs" "$(field PV-ROOT)"
check_eq "guest_image: hostname from provium.name" "PV-HOSTNAME pvg$$" "$(field PV-HOSTNAME)"
check_eq "guest_image: /dev/virtio-ports/org.provium.agent made" "PV-PORT ok" "$(field PV-PORT)"
check_eq "guest_image: modprobe from the 'modules' 9p tag" "PV-MODPROBE ok" "$(field PV-MODPROBE)"
if ! grep -aq '^PV-END' "$con"; then echo "# console tail:"; tail -n 15 "$con" | sed 's/^/#   /'; fi
finish
