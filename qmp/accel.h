/* Choosing QEMU's accelerator: KVM only where it demonstrably runs a guest.
 *
 * Some hosts expose a /dev/kvm that opens and answers ioctls but cannot run a
 * stock guest (this project's CI: kvm_pvm without vmx/svm, where `-accel kvm`
 * spins forever). So KVM is chosen only when the CPU advertises vmx or svm AND
 * a tiny real-mode probe guest actually runs to its `out` instruction; TCG in
 * every other case. */
#ifndef PV_ACCEL_H
#define PV_ACCEL_H

#include <stddef.h>

enum pv_accel { PV_ACCEL_TCG = 0, PV_ACCEL_KVM = 1 };

/* "tcg" or "kvm". */
const char *pv_accel_name(enum pv_accel a);

/* Decide. `reason` (may be NULL) gets one line such as
 * "kvm: CPU has no vmx/svm; using tcg". Never blocks for more than ~2 s. */
enum pv_accel pv_accel_probe(char *reason, size_t len);

/* The /dev/kvm half alone, whatever /proc/cpuinfo says: open /dev/kvm, check
 * KVM_GET_API_VERSION, create a VM and a vCPU and run
 * `mov $42,%al; out %al,$0x10; hlt` in real mode, in a child process bounded by
 * timeout_ms (a KVM_RUN that never returns cannot hang the caller). 0 if the
 * probe guest wrote 42 to port 0x10, else -errno (-ETIMEDOUT, -ENOENT,
 * -EOPNOTSUPP ...) with the why in `reason`. */
int pv_accel_probe_kvm(int timeout_ms, char *reason, size_t len);

#endif
