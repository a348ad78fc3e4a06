/* Booting a VM node: the default guest image, QEMU, the agent. */
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

/* ---- the default guest ---- */

static int run_mkguest(struct pv_vms *v, struct guest_image *img, struct pv_err *err)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC))
		return pv_err_set(err, errno, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		return pv_err_set(err, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		dup2(out[1], 1);
		execl(v->mkguest, v->mkguest, "--agent", v->agent, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	char line[PATH_MAX + 16];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "kernel=", 7))
			snprintf(img->kernel, sizeof(img->kernel), "%s", line + 7);
		else if (!strncmp(line, "vmlinux=", 8))
			snprintf(img->vmlinux, sizeof(img->vmlinux), "%s", line + 8);
		else if (!strncmp(line, "initrd=", 7))
			snprintf(img->initrd, sizeof(img->initrd), "%s", line + 7);
		else if (!strncmp(line, "modules=", 8))
			snprintf(img->modules, sizeof(img->modules), "%s", line + 8);
	}
	if (f)
		fclose(f);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || !img->kernel[0] || !img->initrd[0])
		return pv_err_set(err, EIO,
				  "building the default guest failed (%s --agent %s; its log is in the daemon log)",
				  v->mkguest, v->agent);
	return 0;
}

/* Built once per daemon; mkguest itself caches across runs. */
static int default_image(struct pv_vms *v, struct guest_image *out, struct pv_err *err)
{
	pthread_mutex_lock(&v->image_lock);
	int rc = 0;
	if (!v->image.ready) {
		if (!v->mkguest[0] || access(v->agent, X_OK))
			rc = pv_err_set(err, ENOENT,
					"the default guest needs guest/mkguest and provium-agent beside the daemon (or PROVIUM_MKGUEST, PROVIUM_AGENT): build with make");
		else if (!(rc = run_mkguest(v, &v->image, err)))
			v->image.ready = true;
	}
	*out = v->image;
	pthread_mutex_unlock(&v->image_lock);
	return rc;
}
/* ---- boot ---- */

struct boot_plan {
	struct pv_profile prof;
	struct nic_spec *nics;
	size_t n_nics;
	unsigned memory_mb, cpus;
};

/* Under the lab lock: check the node can boot, mark it booting (which makes
 * its TAPs), and take what QEMU needs. */
static int mutate_boot(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct state_arg *a = arg;
	struct pv_node *n = pv_graph_node(g, a->node);
	if (!n)
		return pv_err_set(err, ENOENT, "no node named `%s`", a->node);
	if (n->state == PV_STATE_BOOTING || n->state == PV_STATE_BOOTED)
		return pv_err_set(err, EBUSY, "`%s` is already %s: write shutdown to %s/ctl first",
				  n->name, pv_state_name(n->state), n->name);
	pv_graph_set_state(g, n, PV_STATE_BOOTING);
	return 0;
}

static int boot_prepare(struct pv_fs *fs, const char *node, struct boot_plan *bp,
			struct pv_err *err)
{
	struct pv_lab *lab = fs->lab;
	struct state_arg a = {.node = node};
	pthread_mutex_lock(&lab->lock);
	int rc = pv_lab_change_locked(lab, mutate_boot, &a, err);
	if (!rc) {
		const struct pv_node *n = pv_graph_node(lab->g, node);
		const struct pv_profile *p = pv_profile_find(&fs->profiles, n->profile);
		if (p)
			bp->prof = *p;
		bp->memory_mb = n->memory_mb;
		bp->cpus = n->cpus;
		bp->nics = pv_vm_nics(lab->g, n, &bp->n_nics);
	}
	pthread_mutex_unlock(&lab->lock);
	if (!rc && lab->after_change)
		lab->after_change(lab->after_ctx);
	return rc;
}


static int start_qemu(struct pv_fs *fs, struct pv_vm *vm, const struct boot_plan *bp,
		      struct pv_qemu **q, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	struct guest_image img = {0};
	const struct pv_profile *p = &bp->prof;
	int rc = 0;
	if (p->kernel[0]) {
		snprintf(img.kernel, sizeof(img.kernel), "%s", p->kernel);
		snprintf(img.initrd, sizeof(img.initrd), "%s", p->initrd);
	} else if ((rc = default_image(v, &img, err))) {
		return rc;
	}
	mkdir(vm->run_dir, 0700);
	char console[PATH_MAX + 16], cmdline[1024];
	snprintf(console, sizeof(console), "%s/console.log", vm->run_dir);
	unlink(console);
	/* loglevel=6 keeps the banner and every warning on the console but
	 * not the hundreds of info lines: a TCG guest prints each byte
	 * through an emulated UART, which costs boot time. The rest skip
	 * boot work a test VM does not need (crypto self-tests, PS/2 and
	 * extra UART probing, audit, the timer check): ~0.25 s under TCG. */
	snprintf(cmdline, sizeof(cmdline),
		 "console=ttyS0 loglevel=6 panic=-1 cryptomgr.notests i8042.noaux i8042.nokbd "
		 "i8042.nopnp 8250.nr_uarts=1 no_timer_check audit=0 random.trust_cpu=on "
		 "provium.name=%s %s",
		 vm->name, p->cmdline);
	struct pv_qemu_virtfs fsx[2] = {{.path = "/usr", .tag = "usr"},
					{.path = img.modules, .tag = "modules"}};
	struct pv_qemu_nic *nics = calloc(bp->n_nics ? bp->n_nics : 1, sizeof(*nics));
	if (!nics)
		return pv_err_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < bp->n_nics; i++)
		nics[i] = (struct pv_qemu_nic){bp->nics[i].id, bp->nics[i].ifname, bp->nics[i].mac};
	struct pv_qemu_spec spec = {
		.name = vm->name,
		/* the uncompressed kernel boots ~3 s sooner under TCG */
		.kernel = img.vmlinux[0] ? img.vmlinux : img.kernel,
		.initrd = img.initrd[0] ? img.initrd : NULL,
		.cmdline = cmdline,
		.memory_mb = bp->memory_mb,
		.cpus = bp->cpus,
		.accel = v->accel,
		.run_dir = vm->run_dir,
		.console_log = console,
		.virtfs = fsx,
		.n_virtfs = img.modules[0] ? 2 : 1,
		.nics = nics,
		.n_nics = bp->n_nics,
	};
	rc = pv_qemu_start(&spec, q, err);
	free(nics);
	return rc;
}

/* NICs the graph gained between planning the boot and QEMU running, and
 * links that are down: bring QEMU in line. */
static int plug_missing(struct pv_fs *fs, const char *node, const struct boot_plan *bp,
			struct pv_err *err)
{
	struct pv_lab *lab = fs->lab;
	pthread_mutex_lock(&lab->lock);
	const struct pv_node *n = pv_graph_node(lab->g, node);
	size_t count = 0;
	struct nic_spec *now = n ? pv_vm_nics(lab->g, n, &count) : NULL;
	pthread_mutex_unlock(&lab->lock);
	int rc = 0;
	pthread_mutex_lock(&fs->vms->lock);
	struct pv_vm *vm = pv_vm_find(fs->vms, node);
	for (size_t i = 0; vm && vm->q && i < count && !rc; i++) {
		bool had = false;
		for (size_t j = 0; j < bp->n_nics; j++)
			had |= !strcmp(bp->nics[j].id, now[i].id);
		if (!had)
			rc = pv_qemu_nic_add(vm->q, now[i].id, now[i].ifname, now[i].mac, err);
		if (!rc && !now[i].link_up)
			rc = pv_qemu_set_link(vm->q, now[i].id, false, err);
	}
	pthread_mutex_unlock(&fs->vms->lock);
	free(now);
	return rc;
}

/* Wait for the agent. One connection for the whole wait: pings sent before
 * the guest opens its port are answered once it does, and a QEMU that dies
 * (a kernel panic with -no-reboot) closes the socket, which fails the wait
 * at once. */
static int wait_agent(struct pv_qemu *q, const char *sock, unsigned timeout_s, struct pv_agent **a,
		      struct pv_err *err)
{
	int rc = pv_agent_connect(sock, (int)timeout_s * 1000, a, err);
	/* the socket may close a moment before QEMU can be reaped */
	if (rc == -ECONNRESET)
		pv_qemu_wait_exit(q, 2000);
	if (rc && !pv_qemu_alive(q)) {
		int status = 0;
		pv_qemu_exit_status(q, &status);
		return pv_err_set(err, ECHILD, "QEMU exited (%s %d) before the agent answered",
				  WIFSIGNALED(status) ? "signal" : "status",
				  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
	if (rc == -ETIMEDOUT)
		return pv_err_set(err, ETIMEDOUT, "no answer from its agent in %u s", timeout_s);
	return rc;
}

/* The boot path's hold on its VM: while it lasts, q and a stay allocated
 * and the watcher leaves the VM to the boot path. */
static void boot_hold_drop(struct pv_vms *v, struct pv_vm *vm)
{
	pthread_mutex_lock(&v->lock);
	vm->booting = false;
	vm->users--;
	pthread_cond_broadcast(&v->idle);
	pthread_mutex_unlock(&v->lock);
	pv_vms_wake(v);
}

static void boot_failed(struct pv_fs *fs, struct pv_vm *vm, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	boot_hold_drop(v, vm);
	pthread_mutex_lock(&v->lock);
	vm->stopping = true;
	pv_vm_release_locked(v, vm);
	pthread_mutex_unlock(&v->lock);
	struct pv_err ignore;
	pv_vm_set_state(fs, vm->name, PV_STATE_DEAD, false, &ignore);
	(void)err;
}

int pv_vm_boot(struct pv_fs *fs, const char *node, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	struct boot_plan bp;
	memset(&bp, 0, sizeof(bp));
	int rc = boot_prepare(fs, node, &bp, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = pv_vm_get(fs, node);
	if (vm) {
		pv_vm_release_locked(v, vm); /* what a previous run left */
		vm->stopping = false;
	}
	pthread_mutex_unlock(&v->lock);
	struct pv_qemu *q = NULL;
	if (!vm)
		rc = pv_err_set(err, ENOMEM, "out of memory");
	else
		rc = start_qemu(fs, vm, &bp, &q, err);
	if (rc) {
		free(bp.nics);
		struct pv_err ignore;
		pv_vm_set_state(fs, node, PV_STATE_DEAD, false, &ignore);
		return rc;
	}
	pthread_mutex_lock(&v->lock);
	vm->q = q;
	vm->booting = true;
	vm->users++;
	pthread_mutex_unlock(&v->lock);

	rc = plug_missing(fs, node, &bp, err);
	free(bp.nics);
	char sock[PATH_MAX + 16];
	snprintf(sock, sizeof(sock), "%s/agent.sock", vm->run_dir);
	struct pv_agent *a = NULL;
	if (!rc)
		rc = wait_agent(q, sock, bp.prof.boot_timeout_s, &a, err);
	if (rc) {
		char console[PATH_MAX + 16], tail[512], why[sizeof(err->msg)];
		snprintf(console, sizeof(console), "%s/console.log", vm->run_dir);
		pv_vm_console_tail(console, tail, sizeof(tail));
		snprintf(why, sizeof(why), "%s", err->msg);
		pv_err_set(err, rc == -ETIMEDOUT ? ETIMEDOUT : -rc, "`%s` did not boot: %s; console.log ends: %s",
			   node, why, tail[0] ? tail : "(empty)");
		boot_failed(fs, vm, err);
		return -err->code;
	}
	pthread_mutex_lock(&v->lock);
	vm->a = a;
	pthread_mutex_unlock(&v->lock);
	boot_hold_drop(v, vm);
	pv_vms_sync_net(fs);
	rc = pv_vm_set_state(fs, node, PV_STATE_BOOTED, true, err);
	if (!rc)
		pv_vms_sync_net(fs);
	return rc;
}
