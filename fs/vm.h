/* VM nodes at run time: QEMU processes, their agents, hot-plug, and a
 * watcher that notices a VM QEMU lost. The graph says what should be; this
 * keeps the running VMs in step with it. */
#ifndef PV_VM_H
#define PV_VM_H

#include "fs/fs.h"

struct pv_vms;

/* Probe acceleration, find the guest builder and agent, start the watcher,
 * and hook QMP into the lab's reconciler. */
int pv_vms_open(struct pv_fs *fs, struct pv_err *err);
/* Kill every VM (teardown) and stop the watcher. */
void pv_vms_close(struct pv_fs *fs);
/* "kvm ...", "tcg ..." lines for the features file. */
void pv_vms_features(struct pv_fs *fs, char *buf, size_t len);

int pv_vm_boot(struct pv_fs *fs, const char *node, struct pv_err *err);
/* Power off (grace, then kill) or kill at once. */
int pv_vm_stop(struct pv_fs *fs, const char *node, bool force, struct pv_err *err);
/* Forget a node's VM (it must be stopped). */
void pv_vm_forget(struct pv_fs *fs, const char *node);
int pv_vm_run(struct pv_fs *fs, const char *node, const char *request, struct pv_buf *reply,
	      struct pv_err *err);
/* Everything the guest printed so far. */
int pv_vm_console(struct pv_fs *fs, const char *node, struct pv_buf *out);
/* Push NIC addresses and /etc/hosts to every booted VM whose view changed. */
void pv_vms_sync_net(struct pv_fs *fs);

#endif
