/* Internals of fs/vm*.c: the VM registry and what its parts share. Not for
 * other modules: they use fs/vm.h. */
#ifndef PV_VM_PRIVATE_H
#define PV_VM_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include "fs/vm.h"
#include "guest/lib/agent_client.h"
#include "qmp/qemu.h"

struct pv_vm {
	pv_name name;
	char run_dir[PATH_MAX];
	struct pv_qemu *q;   /* NULL when not running */
	struct pv_agent *a;  /* NULL until the agent answered */
	bool stopping;       /* a stop we asked for: not a death */
	bool booting;        /* the boot path watches QEMU itself */
	unsigned users;      /* calls in progress on q/a outside the lock */
	char *net_sent;      /* the last NIC/hosts view pushed to the agent */
	pthread_mutex_t net_lock;
	struct pv_vm *next;
};

struct guest_image {
	char kernel[PATH_MAX], vmlinux[PATH_MAX], initrd[PATH_MAX], modules[PATH_MAX];
	bool ready;
};

struct pv_vms {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* a vm's users dropped to 0 */
	struct pv_vm *list;
	pthread_t watcher;
	bool watching;
	int wake[2];
	bool quit;
	enum pv_accel accel;
	char accel_reason[256];
	char mkguest[PATH_MAX], agent[PATH_MAX];
	pthread_mutex_t image_lock;
	struct guest_image image;
	struct pv_vm_hooks hooks;
	struct pv_fs *fs;
};
struct nic_spec {
	char id[16], ifname[16], mac[18], guest[16], cidr[24];
	bool link_up;
};

struct state_arg {
	const char *node;
	enum pv_node_state to;
	bool only_if_running; /* booted only if still booting */
};

/* Registry: callers hold v->lock. */
struct pv_vm *pv_vm_find(struct pv_vms *v, const char *name);
struct pv_vm *pv_vm_get(struct pv_fs *fs, const char *name);
/* Free a VM's QEMU and agent once no call uses them. */
void pv_vm_release_locked(struct pv_vms *v, struct pv_vm *vm);
void pv_vms_wake(struct pv_vms *v);

/* The node's NICs in guest order; lab lock held; caller frees. */
struct nic_spec *pv_vm_nics(const struct pv_graph *g, const struct pv_node *n, size_t *count);
void pv_vm_nic_id(unsigned bridge_id, char out[16]);

/* Move a node to `to` through the graph (if_booting: only from booting). */
int pv_vm_set_state(struct pv_fs *fs, const char *node, enum pv_node_state to, bool if_booting,
		    struct pv_err *err);

/* Borrow a running VM's agent (NULL if none); give it back after the call. */
struct pv_agent *pv_vm_agent_take(struct pv_vms *v, const char *node, struct pv_vm **out);
void pv_vm_agent_give(struct pv_vms *v, struct pv_vm *vm);

/* The last lines of a console log, joined with " | ". */
void pv_vm_console_tail(const char *path, char *out, size_t len);

/* After every committed change (fs/vm_net.c). */
void pv_vms_after_change(void *ctx);

/* The watcher thread (fs/vm_watch.c). */
void *pv_vms_watch(void *arg);

#endif
