/* The guests' network view: NIC names and addresses, and /etc/hosts, pushed
 * to each booted VM's agent when they change. */
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
		nv->nics = pv_vm_nics(fs->lab->g, n, &nv->n);
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
	struct pv_agent *a = pv_vm_agent_take(fs->vms, node, &vm);
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
	pv_vm_agent_give(fs->vms, vm);
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

void pv_vms_after_change(void *ctx)
{
	pv_vms_sync_net(ctx);
}
