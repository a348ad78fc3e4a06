#include "fs/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/lib/agent_client.h"
#include "netcore/fsutil.h"
#include "qmp/accel.h"
#include "qmp/qemu.h"

#define STOP_GRACE_MS 10000

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

/* ---- registry ---- */

static struct pv_vm *vm_find(struct pv_vms *v, const char *name)
{
	for (struct pv_vm *vm = v->list; vm; vm = vm->next)
		if (!strcmp(vm->name, name))
			return vm;
	return NULL;
}

static struct pv_vm *vm_get(struct pv_fs *fs, const char *name)
{
	struct pv_vms *v = fs->vms;
	struct pv_vm *vm = vm_find(v, name);
	if (vm)
		return vm;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->run_dir, sizeof(vm->run_dir), "%s/%s.vm", fs->lab->node_dir, name);
	pthread_mutex_init(&vm->net_lock, NULL);
	vm->next = v->list;
	v->list = vm;
	return vm;
}

static void wake_watcher(struct pv_vms *v)
{
	ssize_t w = write(v->wake[1], "x", 1);
	(void)w;
}

/* Take a VM's QEMU and agent out of the registry; free them once no call
 * uses them any more. Called with v->lock held. */
static void vm_release_locked(struct pv_vms *v, struct pv_vm *vm)
{
	while (vm->users)
		pthread_cond_wait(&v->idle, &v->lock);
	struct pv_qemu *q = vm->q;
	struct pv_agent *a = vm->a;
	vm->q = NULL;
	vm->a = NULL;
	free(vm->net_sent);
	vm->net_sent = NULL;
	if (a)
		pv_agent_close(a);
	if (q)
		pv_qemu_free(q); /* kills it if it still runs, and reaps it */
	wake_watcher(v);
}

/* ---- the node's NICs, from the graph ---- */

struct nic_spec {
	char id[16], ifname[16], mac[18], guest[16], cidr[24];
	bool link_up;
};

static int cmp_nic(const void *a, const void *b)
{
	return strcmp(((const struct nic_spec *)a)->guest, ((const struct nic_spec *)b)->guest);
}

static void nic_id(unsigned bridge_id, char out[16])
{
	snprintf(out, 16, "nic%u", bridge_id);
}

/* The node's NICs in guest order (eth0 first). Lab lock held. Caller frees. */
static struct nic_spec *node_nics(const struct pv_graph *g, const struct pv_node *n, size_t *count)
{
	struct nic_spec *nics = calloc(g->n_bridges ? g->n_bridges : 1, sizeof(*nics));
	*count = 0;
	for (size_t i = 0; nics && i < g->n_bridges; i++) {
		const struct pv_bridge *b = &g->bridges[i];
		const struct pv_member *m = pv_bridge_member(b, n->id);
		if (!m)
			continue;
		struct nic_spec *s = &nics[(*count)++];
		nic_id(b->id, s->id);
		pv_port_ifname(n->id, b->id, s->ifname);
		pv_mac_format(m->mac, s->mac);
		snprintf(s->guest, sizeof(s->guest), "eth%d", m->nic_index < 0 ? 99 : m->nic_index);
		pv_member_cidr(b, m, s->cidr, sizeof(s->cidr));
		s->link_up = m->link_up;
	}
	if (nics)
		qsort(nics, *count, sizeof(*nics), cmp_nic);
	return nics;
}

/* ---- reconciler hooks (called with the lab lock held) ---- */

static int hook_nic_plug(void *ctx, const struct pv_port_rec *p, struct pv_err *err)
{
	struct pv_vms *v = ctx;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = vm_find(v, p->node);
	int rc = 0;
	if (vm && vm->q && !vm->stopping) {
		char id[16], mac[18];
		nic_id(p->bridge_id, id);
		pv_mac_format(p->mac, mac);
		rc = pv_qemu_nic_add(vm->q, id, p->ifname, mac, err);
		if (!rc && !p->up)
			rc = pv_qemu_set_link(vm->q, id, false, err);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

static void hook_nic_unplug(void *ctx, const struct pv_port_rec *p)
{
	struct pv_vms *v = ctx;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = vm_find(v, p->node);
	if (vm && vm->q && !vm->stopping) {
		char id[16];
		struct pv_err ignore;
		nic_id(p->bridge_id, id);
		/* a guest that does not eject in time loses the NIC anyway */
		pv_qemu_nic_del(vm->q, id, &ignore);
	}
	pthread_mutex_unlock(&v->lock);
}

static int hook_set_link(void *ctx, const struct pv_port_rec *p, struct pv_err *err)
{
	struct pv_vms *v = ctx;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = vm_find(v, p->node);
	int rc = 0;
	if (vm && vm->q && !vm->stopping) {
		char id[16];
		nic_id(p->bridge_id, id);
		rc = pv_qemu_set_link(vm->q, id, p->up, err);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* ---- graph changes ---- */

struct state_arg {
	const char *node;
	enum pv_node_state to;
	bool only_if_running; /* booted only if still booting */
};

static int mutate_state(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct state_arg *a = arg;
	struct pv_node *n = pv_graph_node(g, a->node);
	if (!n)
		return pv_err_set(err, ENOENT, "node `%s` was removed", a->node);
	if (a->only_if_running && n->state != PV_STATE_BOOTING)
		return pv_err_set(err, ECANCELED, "node `%s` was stopped while it booted", a->node);
	pv_graph_set_state(g, n, a->to);
	return 0;
}

static int set_state(struct pv_fs *fs, const char *node, enum pv_node_state to, bool if_booting,
		     struct pv_err *err)
{
	struct state_arg a = {.node = node, .to = to, .only_if_running = if_booting};
	return pv_lab_change(fs->lab, mutate_state, &a, err);
}

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
		bp->nics = node_nics(lab->g, n, &bp->n_nics);
	}
	pthread_mutex_unlock(&lab->lock);
	if (!rc && lab->after_change)
		lab->after_change(lab->after_ctx);
	return rc;
}

static void console_tail(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	char buf[8192];
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* a kernel panic's own line (its trace follows it), then the last two
	 * non-empty lines, joined with " | " */
	char *lines[3] = {0}, *panic = NULL;
	for (char *save = NULL, *l = strtok_r(buf, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
		if (!*l)
			continue;
		if (strstr(l, "Kernel panic"))
			panic = l;
		lines[0] = lines[1];
		lines[1] = lines[2];
		lines[2] = l;
	}
	if (panic && panic != lines[1] && panic != lines[2])
		lines[0] = panic;
	for (int i = 0; i < 3; i++)
		if (lines[i]) {
			size_t used = strlen(out);
			snprintf(out + used, len - used, "%s%.120s", used ? " | " : "", lines[i]);
		}
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
	struct nic_spec *now = n ? node_nics(lab->g, n, &count) : NULL;
	pthread_mutex_unlock(&lab->lock);
	int rc = 0;
	pthread_mutex_lock(&fs->vms->lock);
	struct pv_vm *vm = vm_find(fs->vms, node);
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
	wake_watcher(v);
}

static void boot_failed(struct pv_fs *fs, struct pv_vm *vm, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	boot_hold_drop(v, vm);
	pthread_mutex_lock(&v->lock);
	vm->stopping = true;
	vm_release_locked(v, vm);
	pthread_mutex_unlock(&v->lock);
	struct pv_err ignore;
	set_state(fs, vm->name, PV_STATE_DEAD, false, &ignore);
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
	struct pv_vm *vm = vm_get(fs, node);
	if (vm) {
		vm_release_locked(v, vm); /* what a previous run left */
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
		set_state(fs, node, PV_STATE_DEAD, false, &ignore);
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
		console_tail(console, tail, sizeof(tail));
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
	rc = set_state(fs, node, PV_STATE_BOOTED, true, err);
	if (!rc)
		pv_vms_sync_net(fs);
	return rc;
}

/* ---- stop ---- */

int pv_vm_stop(struct pv_fs *fs, const char *node, bool force, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = vm_find(v, node);
	struct pv_qemu *q = vm ? vm->q : NULL;
	struct pv_agent *a = vm ? vm->a : NULL;
	if (vm) {
		vm->stopping = true;
		vm->users++;
	}
	pthread_mutex_unlock(&v->lock);
	if (q && !force) {
		struct pv_err ignore;
		/* a clean power-off first; QEMU's own stop quits, then kills */
		if (!a || pv_agent_shutdown(a, &ignore) || pv_qemu_wait_exit(q, STOP_GRACE_MS))
			pv_qemu_stop(q, 2000);
	} else if (q) {
		pv_qemu_kill(q);
	}
	pthread_mutex_lock(&v->lock);
	if (vm) {
		vm->users--;
		pthread_cond_broadcast(&v->idle);
		vm_release_locked(v, vm);
	}
	pthread_mutex_unlock(&v->lock);
	return set_state(fs, node, PV_STATE_SHUTDOWN, false, err);
}

void pv_vm_forget(struct pv_fs *fs, const char *node)
{
	struct pv_vms *v = fs->vms;
	pthread_mutex_lock(&v->lock);
	for (struct pv_vm **pp = &v->list; *pp; pp = &(*pp)->next) {
		struct pv_vm *vm = *pp;
		if (strcmp(vm->name, node))
			continue;
		vm->stopping = true;
		vm_release_locked(v, vm);
		*pp = vm->next;
		pv_rm_rf(vm->run_dir);
		pthread_mutex_destroy(&vm->net_lock);
		free(vm);
		break;
	}
	pthread_mutex_unlock(&v->lock);
}

/* ---- run, console ---- */

static struct pv_agent *agent_take(struct pv_vms *v, const char *node, struct pv_vm **out)
{
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = vm_find(v, node);
	struct pv_agent *a = vm && !vm->stopping ? vm->a : NULL;
	if (a)
		vm->users++;
	pthread_mutex_unlock(&v->lock);
	*out = vm;
	return a;
}

static void agent_give(struct pv_vms *v, struct pv_vm *vm)
{
	pthread_mutex_lock(&v->lock);
	vm->users--;
	pthread_cond_broadcast(&v->idle);
	pthread_mutex_unlock(&v->lock);
}

int pv_vm_run(struct pv_fs *fs, const char *node, const char *request, struct pv_buf *reply,
	      struct pv_err *err)
{
	struct pv_vm *vm;
	struct pv_agent *a = agent_take(fs->vms, node, &vm);
	if (!a)
		return pv_err_set(err, EHOSTDOWN, "`%s` has no running agent: write boot to %s/ctl first",
				  node, node);
	char *json = NULL;
	int rc = pv_agent_exec(a, request, 0, &json, err);
	agent_give(fs->vms, vm);
	if (rc)
		return rc;
	reply->len = strlen(json);
	reply->data = realloc(json, reply->len + 2);
	if (!reply->data) {
		free(json);
		return pv_err_set(err, ENOMEM, "out of memory");
	}
	if (reply->len == 0 || reply->data[reply->len - 1] != '\n')
		reply->data[reply->len++] = '\n';
	reply->data[reply->len] = '\0';
	return 0;
}

int pv_vm_console(struct pv_fs *fs, const char *node, struct pv_buf *out)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s.vm/console.log", fs->lab->node_dir, node);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0; /* never booted: empty */
	char buf[65536];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		char *grown = realloc(out->data, out->len + n + 1);
		if (!grown)
			rc = -ENOMEM;
		else {
			memcpy(grown + out->len, buf, n);
			out->data = grown;
			out->len += n;
			out->data[out->len] = '\0';
		}
	}
	fclose(f);
	return rc;
}

/* ---- the guest's network view ---- */

struct net_view {
	char *key; /* canonical text of nics + hosts, to skip identical pushes */
	struct nic_spec *nics;
	size_t n;
	char *hosts;
};

static void net_view_free(struct net_view *nv)
{
	free(nv->key);
	free(nv->nics);
	free(nv->hosts);
}

static int net_view(struct pv_fs *fs, const char *node, struct net_view *nv)
{
	memset(nv, 0, sizeof(*nv));
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_node *n = pv_graph_node(fs->lab->g, node);
	if (n && pv_node_up(n)) {
		nv->nics = node_nics(fs->lab->g, n, &nv->n);
		nv->hosts = pv_hosts_render(fs->lab->g, n);
	}
	pthread_mutex_unlock(&fs->lab->lock);
	if (!nv->nics || !nv->hosts)
		return -ENOENT;
	char *k = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&k, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < nv->n; i++)
		fprintf(f, "%s %s %s\n", nv->nics[i].mac, nv->nics[i].guest, nv->nics[i].cidr);
	fputs(nv->hosts, f);
	fclose(f);
	nv->key = k;
	return 0;
}

static void sync_one(struct pv_fs *fs, const char *node)
{
	struct pv_vm *vm;
	struct pv_agent *a = agent_take(fs->vms, node, &vm);
	if (!a)
		return;
	pthread_mutex_lock(&vm->net_lock);
	struct net_view nv;
	if (net_view(fs, node, &nv) == 0 && (!vm->net_sent || strcmp(vm->net_sent, nv.key))) {
		struct pv_agent_nic *an = calloc(nv.n ? nv.n : 1, sizeof(*an));
		for (size_t i = 0; an && i < nv.n; i++)
			an[i] = (struct pv_agent_nic){nv.nics[i].mac, nv.nics[i].guest, nv.nics[i].cidr, 1};
		struct pv_err err;
		pv_err_clear(&err);
		if (an && pv_agent_net(a, an, nv.n, nv.hosts, NULL, &err) == 0) {
			free(vm->net_sent);
			vm->net_sent = nv.key;
			nv.key = NULL;
		} else {
			pv_lab_log_error(fs->lab, node, "net", 3, &err);
		}
		free(an);
	}
	net_view_free(&nv);
	pthread_mutex_unlock(&vm->net_lock);
	agent_give(fs->vms, vm);
}

void pv_vms_sync_net(struct pv_fs *fs)
{
	struct pv_vms *v = fs->vms;
	pthread_mutex_lock(&v->lock);
	size_t n = 0;
	for (struct pv_vm *vm = v->list; vm; vm = vm->next)
		n++;
	pv_name *names = calloc(n ? n : 1, sizeof(*names));
	size_t k = 0;
	for (struct pv_vm *vm = v->list; names && vm; vm = vm->next)
		if (vm->a)
			memcpy(names[k++], vm->name, sizeof(pv_name));
	pthread_mutex_unlock(&v->lock);
	for (size_t i = 0; i < k; i++)
		sync_one(fs, names[i]);
	free(names);
}

static void after_change(void *ctx)
{
	pv_vms_sync_net(ctx);
}

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
	console_tail(console, tail, sizeof(tail));
	pv_name name;
	memcpy(name, vm->name, sizeof(name));
	vm->stopping = true;
	vm_release_locked(v, vm);
	pthread_mutex_unlock(&v->lock);
	struct pv_err err;
	pv_err_set(&err, EHOSTDOWN, "VM `%s` died: QEMU %s; console.log ends: %s", name, why,
		   tail[0] ? tail : "(empty)");
	pv_lab_log_error(fs->lab, name, "", 0, &err);
	struct pv_err ignore;
	set_state(fs, name, PV_STATE_DEAD, false, &ignore);
	pthread_mutex_lock(&v->lock);
}

static void *watch(void *arg)
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

/* ---- open / close ---- */

static void find_tools(struct pv_vms *v)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	char *dir = dirname(exe);
	const char *env = getenv("PROVIUM_AGENT");
	if (env)
		snprintf(v->agent, sizeof(v->agent), "%s", env);
	else
		snprintf(v->agent, sizeof(v->agent), "%s/provium-agent", dir);
	env = getenv("PROVIUM_MKGUEST");
	const char *cands[] = {"%s/../guest/mkguest", "%s/../../guest/mkguest",
			       "%s/../lib/provium/mkguest"};
	if (env) {
		snprintf(v->mkguest, sizeof(v->mkguest), "%s", env);
		return;
	}
	for (size_t i = 0; i < sizeof(cands) / sizeof(*cands); i++) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof(p), cands[i], dir);
		char *real = realpath(p, NULL);
		if (real && access(real, X_OK) == 0) {
			snprintf(v->mkguest, sizeof(v->mkguest), "%s", real);
			free(real);
			return;
		}
		free(real);
	}
}

int pv_vms_open(struct pv_fs *fs, struct pv_err *err)
{
	struct pv_vms *v = calloc(1, sizeof(*v));
	if (!v)
		return pv_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->image_lock, NULL);
	pthread_cond_init(&v->idle, NULL);
	if (pipe2(v->wake, O_CLOEXEC | O_NONBLOCK)) {
		free(v);
		return pv_err_set(err, errno, "pipe: %s", strerror(errno));
	}
	v->fs = fs;
	v->accel = pv_accel_probe(v->accel_reason, sizeof(v->accel_reason));
	find_tools(v);
	v->hooks = (struct pv_vm_hooks){v, hook_nic_plug, hook_nic_unplug, hook_set_link};
	fs->vms = v;
	fs->lab->k.vm = &v->hooks;
	fs->lab->after_change = after_change;
	fs->lab->after_ctx = fs;
	if (pthread_create(&v->watcher, NULL, watch, fs) == 0)
		v->watching = true;
	return 0;
}

void pv_vms_close(struct pv_fs *fs)
{
	struct pv_vms *v = fs->vms;
	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->quit = true;
	for (struct pv_vm *vm = v->list; vm; vm = vm->next) {
		vm->stopping = true;
		if (vm->q)
			pv_qemu_kill(vm->q);
	}
	pthread_mutex_unlock(&v->lock);
	wake_watcher(v);
	if (v->watching)
		pthread_join(v->watcher, NULL);
	fs->lab->k.vm = NULL;
	fs->lab->after_change = NULL;
	while (v->list)
		pv_vm_forget(fs, v->list->name);
	close(v->wake[0]);
	close(v->wake[1]);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->image_lock);
	pthread_cond_destroy(&v->idle);
	free(v);
	fs->vms = NULL;
}

void pv_vms_features(struct pv_fs *fs, char *buf, size_t len)
{
	struct pv_vms *v = fs->vms;
	snprintf(buf, len, "kvm %s\ntcg yes\naccel %s (%s)\n", v->accel == PV_ACCEL_KVM ? "yes" : "no",
		 pv_accel_name(v->accel), v->accel_reason);
}
