#include "fs/nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcore/nsexec.h"
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

int pv_nodes_add_vm(struct pv_fs *fs, char **args, size_t n, struct pv_err *err)
{
	(void)fs;
	(void)args;
	(void)n;
	return pv_err_set(err, EOPNOTSUPP, "VM nodes are not available in this build: use `netns NAME`");
}

int pv_nodes_rm(struct pv_fs *fs, const char *name, struct pv_err *err)
{
	return pv_lab_change(fs->lab, mutate_rm_node, (void *)name, err);
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

int pv_nodes_ctl(struct pv_fs *fs, const char *node, const char *cmd, struct pv_err *err)
{
	enum pv_node_kind kind;
	enum pv_node_state state;
	int rc = node_kind(fs, node, &kind, &state, err);
	if (rc)
		return rc;
	struct state_change c = {.node = node};
	if (!strcmp(cmd, "boot"))
		c.to = PV_STATE_BOOTED;
	else if (!strcmp(cmd, "shutdown") || !strcmp(cmd, "kill"))
		c.to = PV_STATE_SHUTDOWN;
	else
		return pv_err_set(err, EINVAL, "write `boot`, `shutdown` or `kill`");
	if (kind == PV_NODE_QEMU)
		return pv_err_set(err, EOPNOTSUPP, "VM nodes are not available in this build");
	/* a netns node boots and stops at once: its namespace is made or
	 * deleted (with every process in it) by the reconciler */
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
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = pv_nodes_ctl(fs, names[i], cmd, err);
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
	struct pv_run_result res;
	memset(&res, 0, sizeof(res));
	if (kind == PV_NODE_NETNS)
		rc = run_netns(fs, node, &req, &res, err);
	else
		rc = pv_err_set(err, EOPNOTSUPP, "VM nodes are not available in this build");
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
