/* VM nodes: the registry of running VMs, the reconciler's QMP hooks, stop,
 * run and console, and the module's set-up. Boot is fs/vm_boot.c, the
 * guests' network view fs/vm_net.c, the death watcher fs/vm_watch.c. */
#include <libgen.h>

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
#include "netcore/fsutil.h"
#include "qmp/accel.h"

#define STOP_GRACE_MS 10000 /* a powered-off guest gets this long to exit */

/* ---- registry ---- */

struct pv_vm *pv_vm_find(struct pv_vms *v, const char *name)
{
	for (struct pv_vm *vm = v->list; vm; vm = vm->next)
		if (!strcmp(vm->name, name))
			return vm;
	return NULL;
}

struct pv_vm *pv_vm_get(struct pv_fs *fs, const char *name)
{
	struct pv_vms *v = fs->vms;
	struct pv_vm *vm = pv_vm_find(v, name);
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

void pv_vms_wake(struct pv_vms *v)
{
	ssize_t w = write(v->wake[1], "x", 1);
	(void)w;
}

/* Take a VM's QEMU and agent out of the registry; free them once no call
 * uses them any more. Called with v->lock held. */
void pv_vm_release_locked(struct pv_vms *v, struct pv_vm *vm)
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
	pv_vms_wake(v);
}
/* ---- the node's NICs, from the graph ---- */


static int cmp_nic(const void *a, const void *b)
{
	return strcmp(((const struct nic_spec *)a)->guest, ((const struct nic_spec *)b)->guest);
}

void pv_vm_nic_id(unsigned bridge_id, char out[16])
{
	snprintf(out, 16, "nic%u", bridge_id);
}

/* The node's NICs in guest order (eth0 first). Lab lock held. Caller frees. */
struct nic_spec *pv_vm_nics(const struct pv_graph *g, const struct pv_node *n, size_t *count)
{
	struct nic_spec *nics = calloc(g->n_bridges ? g->n_bridges : 1, sizeof(*nics));
	*count = 0;
	for (size_t i = 0; nics && i < g->n_bridges; i++) {
		const struct pv_bridge *b = &g->bridges[i];
		const struct pv_member *m = pv_bridge_member(b, n->id);
		if (!m)
			continue;
		struct nic_spec *s = &nics[(*count)++];
		pv_vm_nic_id(b->id, s->id);
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
	struct pv_vm *vm = pv_vm_find(v, p->node);
	int rc = 0;
	if (vm && vm->q && !vm->stopping) {
		char id[16], mac[18];
		pv_vm_nic_id(p->bridge_id, id);
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
	struct pv_vm *vm = pv_vm_find(v, p->node);
	if (vm && vm->q && !vm->stopping) {
		char id[16];
		struct pv_err ignore;
		pv_vm_nic_id(p->bridge_id, id);
		/* a guest that does not eject in time loses the NIC anyway */
		pv_qemu_nic_del(vm->q, id, &ignore);
	}
	pthread_mutex_unlock(&v->lock);
}

static int hook_set_link(void *ctx, const struct pv_port_rec *p, struct pv_err *err)
{
	struct pv_vms *v = ctx;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = pv_vm_find(v, p->node);
	int rc = 0;
	if (vm && vm->q && !vm->stopping) {
		char id[16];
		pv_vm_nic_id(p->bridge_id, id);
		rc = pv_qemu_set_link(vm->q, id, p->up, err);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}
/* ---- graph changes ---- */


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

int pv_vm_set_state(struct pv_fs *fs, const char *node, enum pv_node_state to, bool if_booting,
		     struct pv_err *err)
{
	struct state_arg a = {.node = node, .to = to, .only_if_running = if_booting};
	return pv_lab_change(fs->lab, mutate_state, &a, err);
}
/* ---- stop ---- */

int pv_vm_stop(struct pv_fs *fs, const char *node, bool force, struct pv_err *err)
{
	struct pv_vms *v = fs->vms;
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = pv_vm_find(v, node);
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
		pv_vm_release_locked(v, vm);
	}
	pthread_mutex_unlock(&v->lock);
	return pv_vm_set_state(fs, node, PV_STATE_SHUTDOWN, false, err);
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
		pv_vm_release_locked(v, vm);
		*pp = vm->next;
		pv_rm_rf(vm->run_dir);
		pthread_mutex_destroy(&vm->net_lock);
		free(vm);
		break;
	}
	pthread_mutex_unlock(&v->lock);
}
/* ---- run, console ---- */

struct pv_agent *pv_vm_agent_take(struct pv_vms *v, const char *node, struct pv_vm **out)
{
	pthread_mutex_lock(&v->lock);
	struct pv_vm *vm = pv_vm_find(v, node);
	struct pv_agent *a = vm && !vm->stopping ? vm->a : NULL;
	if (a)
		vm->users++;
	pthread_mutex_unlock(&v->lock);
	*out = vm;
	return a;
}

void pv_vm_agent_give(struct pv_vms *v, struct pv_vm *vm)
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
	struct pv_agent *a = pv_vm_agent_take(fs->vms, node, &vm);
	if (!a)
		return pv_err_set(err, EHOSTDOWN, "`%s` has no running agent: write boot to %s/ctl first",
				  node, node);
	char *json = NULL;
	int rc = pv_agent_exec(a, request, 0, &json, err);
	pv_vm_agent_give(fs->vms, vm);
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
void pv_vm_console_tail(const char *path, char *out, size_t len)
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
	fs->lab->after_change = pv_vms_after_change;
	fs->lab->after_ctx = fs;
	if (pthread_create(&v->watcher, NULL, pv_vms_watch, fs) == 0)
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
	pv_vms_wake(v);
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
