/* The watcher: a VM that QEMU loses turns dead within a second. */
#include <poll.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/vm_private.h"

/* ---- the watcher: a VM that QEMU loses turns dead ---- */

static void vm_died(struct pv_fs *fs, struct pv_vm *vm)
{
	struct pv_vms *v = fs->vms;
	int status = 0;
	pv_qemu_exit_status(vm->q, &status);
	char why[64];
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	char console[PATH_MAX + 16], tail[512];
	snprintf(console, sizeof(console), "%s/console.log", vm->run_dir);
	pv_vm_console_tail(console, tail, sizeof(tail));
	pv_name name;
	memcpy(name, vm->name, sizeof(name));
	vm->stopping = true;
	pv_vm_release_locked(v, vm);
	pthread_mutex_unlock(&v->lock);
	struct pv_err err;
	pv_err_set(&err, EHOSTDOWN, "VM `%s` died: QEMU %s; console.log ends: %s", name, why,
		   tail[0] ? tail : "(empty)");
	pv_lab_log_error(fs->lab, name, "", 0, &err);
	struct pv_err ignore;
	pv_vm_set_state(fs, name, PV_STATE_DEAD, false, &ignore);
	pthread_mutex_lock(&v->lock);
}

void *pv_vms_watch(void *arg)
{
	struct pv_fs *fs = arg;
	struct pv_vms *v = fs->vms;
	pthread_mutex_lock(&v->lock);
	while (!v->quit) {
		struct pollfd pfd[65];
		struct pv_vm *who[65];
		size_t n = 1;
		pfd[0] = (struct pollfd){.fd = v->wake[0], .events = POLLIN};
		for (struct pv_vm *vm = v->list; vm && n < 65; vm = vm->next)
			if (vm->q && !vm->stopping && !vm->booting) {
				who[n] = vm;
				pfd[n++] = (struct pollfd){.fd = pv_qemu_exit_fd(vm->q), .events = POLLIN};
			}
		pthread_mutex_unlock(&v->lock);
		poll(pfd, n, 1000);
		char drain[64];
		if (pfd[0].revents & POLLIN) {
			ssize_t r = read(v->wake[0], drain, sizeof(drain));
			(void)r;
		}
		pthread_mutex_lock(&v->lock);
		for (size_t i = 1; i < n && !v->quit; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)))
				continue;
			/* still the same, unstopped VM? */
			for (struct pv_vm *vm = v->list; vm; vm = vm->next)
				if (vm == who[i] && vm->q && !vm->stopping && !vm->booting &&
				    !pv_qemu_alive(vm->q)) {
					vm_died(fs, vm);
					break;
				}
			break; /* the list may have changed: poll again */
		}
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}
