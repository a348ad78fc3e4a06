#include "fs/nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/vm.h"
#include "netcore/nsexec.h"
#include "netcore/parse.h"
#include "netcore/runreq.h"

struct state_change {
	const char *node;
	enum pv_node_state to;
};

static int mutate_state(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct state_change *c = arg;
	struct pv_node *n = pv_graph_node(g, c->node);
	if (!n)
		return pv_err_set(err, ENOENT, "no node named `%s`", c->node);
	pv_graph_set_state(g, n, c->to);
	return 0;
}

static int mutate_rm_node(struct pv_graph *g, void *arg, struct pv_err *err)
{
	if (pv_graph_bridge(g, arg))
		return pv_graph_del_bridge(g, arg, err);
	return pv_graph_del_node(g, arg, err);
}

struct vm_arg {
	const char *name;
	const struct pv_profile *prof;
	unsigned memory_mb, cpus;
};

static int mutate_add_vm(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct vm_arg *a = arg;
	int rc = pv_graph_add_node(g, a->name, a->prof->kind, err);
	if (rc)
		return rc;
	struct pv_node *n = pv_graph_node(g, a->name);
	snprintf(n->profile, sizeof(n->profile), "%s", a->prof->name);
	n->memory_mb = a->memory_mb;
	n->cpus = a->cpus;
	return 0;
}

/* "vm NAME [PROFILE] [memory=256M] [cpus=1]" */
int pv_nodes_add_vm(struct pv_fs *fs, char **args, size_t n, struct pv_err *err)
{
	struct vm_arg a = {.name = args[0]};
	const char *profile = "default";
	size_t i = 1;
	if (i < n && !strchr(args[i], '='))
		profile = args[i++];
	a.prof = pv_profile_find(&fs->profiles, profile);
	if (!a.prof)
		return pv_err_set(err, ENOENT,
				  "no profile named `%.40s`: use default or netns, or define [profiles.%.40s] in provium.toml",
				  profile, profile);
	a.memory_mb = a.prof->memory_mb;
	a.cpus = a.prof->cpus;
	for (; i < n; i++) {
		uint64_t v;
		if (!strncmp(args[i], "memory=", 7)) {
			int rc = pv_parse_mib(args[i] + 7, &a.memory_mb, err);
			if (rc)
				return rc;
		} else if (!strncmp(args[i], "cpus=", 5)) {
			int rc = pv_parse_u64(args[i] + 5, 1, 64, &v, "cpus", err);
			if (rc)
				return rc;
			a.cpus = (unsigned)v;
		} else {
			return pv_err_set(err, EINVAL,
					  "unknown option `%.40s`: write `vm NAME [PROFILE] [memory=256M] [cpus=1]`",
					  args[i]);
		}
	}
	return pv_lab_change(fs->lab, mutate_add_vm, &a, err);
}

static int node_kind(struct pv_fs *fs, const char *node, enum pv_node_kind *kind,
		     enum pv_node_state *state, struct pv_err *err)
{
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_node *n = pv_graph_node(fs->lab->g, node);
	if (n) {
		*kind = n->kind;
		*state = n->state;
	}
	pthread_mutex_unlock(&fs->lab->lock);
	if (!n)
		return pv_err_set(err, ENOENT, "no node named `%s`", node);
	return 0;
}

int pv_nodes_rm(struct pv_fs *fs, const char *name, struct pv_err *err)
{
	enum pv_node_kind kind;
	enum pv_node_state state;
	struct pv_err ignore;
	if (node_kind(fs, name, &kind, &state, &ignore) == 0 && kind == PV_NODE_QEMU) {
		if (state == PV_STATE_BOOTING || state == PV_STATE_BOOTED)
			pv_vm_stop(fs, name, true, &ignore);
		pv_vm_forget(fs, name);
	}
	return pv_lab_change(fs->lab, mutate_rm_node, (void *)name, err);
}

int pv_nodes_ctl(struct pv_fs *fs, const char *node, const char *cmd, struct pv_err *err)
{
	enum pv_node_kind kind;
	enum pv_node_state state;
	int rc = node_kind(fs, node, &kind, &state, err);
	if (rc)
		return rc;
	bool boot = !strcmp(cmd, "boot"), kill = !strcmp(cmd, "kill");
	if (!boot && !kill && strcmp(cmd, "shutdown"))
		return pv_err_set(err, EINVAL, "write `boot`, `shutdown` or `kill`");
	if (kind == PV_NODE_QEMU) {
		if (boot)
			return pv_vm_boot(fs, node, err);
		return pv_vm_stop(fs, node, kill, err);
	}
	/* a netns node boots and stops at once: its namespace is made or
	 * deleted (with every process in it) by the reconciler */
	struct state_change c = {.node = node, .to = boot ? PV_STATE_BOOTED : PV_STATE_SHUTDOWN};
	return pv_lab_change(fs->lab, mutate_state, &c, err);
}

int pv_nodes_all(struct pv_fs *fs, const char *cmd, struct pv_err *err)
{
	pthread_mutex_lock(&fs->lab->lock);
	size_t n = fs->lab->g->n_nodes;
	pv_name *names = calloc(n ? n : 1, sizeof(*names));
	for (size_t i = 0; names && i < n; i++)
		memcpy(names[i], fs->lab->g->nodes[i].name, sizeof(pv_name));
	pthread_mutex_unlock(&fs->lab->lock);
	if (!names)
		return pv_err_set(err, ENOMEM, "out of memory");
	bool boot = !strcmp(cmd, "boot");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		enum pv_node_kind kind;
		enum pv_node_state state;
		if (node_kind(fs, names[i], &kind, &state, err))
			continue;
		bool up = state == PV_STATE_BOOTED || state == PV_STATE_BOOTING;
		if (boot != up) /* only what needs it: booting a booted node is no error here */
			rc = pv_nodes_ctl(fs, names[i], cmd, err);
	}
	free(names);
	return rc;
}

static int run_netns(struct pv_fs *fs, const char *node, const struct pv_run_req *req,
		     struct pv_run_result *res, struct pv_err *err)
{
	char ns[96], nspath[160], hosts[PATH_MAX];
	pv_node_netns_name(fs->lab->name, node, ns, sizeof(ns));
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", ns);
	pv_node_hosts_path(fs->lab->node_dir, node, hosts, sizeof(hosts));
	struct pv_nsexec_target t = {.netns_path = nspath, .hosts_path = hosts, .hostname = node};
	return pv_nsexec_run(&t, req, res, err);
}

int pv_nodes_run(struct pv_fs *fs, const char *node, const char *request, size_t len,
		 struct pv_buf *reply, struct pv_err *err)
{
	enum pv_node_kind kind;
	enum pv_node_state state;
	int rc = node_kind(fs, node, &kind, &state, err);
	if (rc)
		return rc;
	if (state != PV_STATE_BOOTED)
		return pv_err_set(err, EHOSTDOWN, "node `%s` is %s: write boot to %s/ctl first", node,
				  pv_state_name(state), node);
	struct pv_run_req req;
	rc = pv_run_req_parse(request, len, &req, err);
	if (rc)
		return rc;
	if (kind == PV_NODE_QEMU) {
		/* the agent takes the same request, validated above */
		char *json = pv_run_req_to_json(&req);
		pv_run_req_free(&req);
		if (!json)
			return pv_err_set(err, ENOMEM, "out of memory");
		rc = pv_vm_run(fs, node, json, reply, err);
		free(json);
		return rc;
	}
	struct pv_run_result res;
	memset(&res, 0, sizeof(res));
	rc = run_netns(fs, node, &req, &res, err);
	pv_run_req_free(&req);
	if (rc)
		return rc;
	char *json = pv_run_result_to_json(&res);
	pv_run_result_free(&res);
	if (!json)
		return pv_err_set(err, ENOMEM, "out of memory rendering the result");
	reply->data = json;
	reply->len = strlen(json);
	return 0;
}
