/* Lab-level files: ctl, errors, features, state.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fs/fs.h"
#include "fs/nodes.h"
#include "fs/vm.h"
#include "netcore/impair.h"
#include "netcore/parse.h"

static const char ctl_usage[] =
	"write `netns NAME`, `vm NAME [PROFILE] [memory=256M cpus=1]`, `rm NAME`, `boot`, `shutdown`, `reset` or `teardown`";

static int mutate_add_netns(struct pv_graph *g, void *arg, struct pv_err *err)
{
	int rc = pv_graph_add_node(g, arg, PV_NODE_NETNS, err);
	if (rc)
		return rc;
	/* a netns node boots in milliseconds: it is up as soon as it exists */
	pv_graph_set_state(g, pv_graph_node(g, arg), PV_STATE_BOOTED);
	return 0;
}

static int mutate_reset(struct pv_graph *g, void *arg, struct pv_err *err)
{
	(void)arg;
	for (size_t i = 0; i < g->n_bridges; i++) {
		int rc = pv_graph_bridge_reset(g, g->bridges[i].name, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int ctl_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
		     struct pv_buf *reply, struct pv_err *err)
{
	(void)p;
	(void)len;
	(void)reply;
	char *w[8];
	size_t n;
	if (pv_split_words(data, w, 8, &n, err) || n == 0)
		return pv_err_set(err, EINVAL, "%s", ctl_usage);
	const char *cmd = w[0];
	if (!strcmp(cmd, "netns") && n == 2)
		return pv_lab_change(fs->lab, mutate_add_netns, w[1], err);
	if (!strcmp(cmd, "vm") && n >= 2)
		return pv_nodes_add_vm(fs, w + 1, n - 1, err);
	if (!strcmp(cmd, "vm") && n < 2)
		return pv_err_set(err, EINVAL, "write `vm NAME [PROFILE] [memory=256M] [cpus=1]`");
	if (!strcmp(cmd, "rm") && n == 2)
		return pv_nodes_rm(fs, w[1], err);
	if ((!strcmp(cmd, "boot") || !strcmp(cmd, "shutdown")) && n == 1)
		return pv_nodes_all(fs, cmd, err);
	if (!strcmp(cmd, "reset") && n == 1)
		return pv_lab_change(fs->lab, mutate_reset, NULL, err);
	if (!strcmp(cmd, "teardown") && n == 1) {
		pv_fs_request_exit(fs);
		return 0;
	}
	return pv_err_set(err, EINVAL, "%s", ctl_usage);
}

static int errors_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	(void)p;
	out->data = pv_lab_errors_text(fs->lab);
	if (!out->data)
		return -ENOMEM;
	out->len = strlen(out->data);
	return 0;
}

static int features_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	(void)p;
	char vm[256];
	pv_vms_features(fs, vm, sizeof(vm));
	return pv_buf_printf(out, "%s%s", fs->lab->features, vm);
}

/* Keys that are set, as numbers in the files' units (a percentage may be
 * fractional). */
static json_object *impair_json(const struct pv_impair *im)
{
	json_object *j = json_object_new_object();
	for (int k = 0; k < PV_IMP_NKEYS; k++) {
		uint64_t v = im->v[k];
		const char *name = pv_impair_key_name(k);
		if (!v)
			continue;
		json_object *o;
		if (!strstr(name, "_pct")) /* ms, bit/s */
			o = json_object_new_int64((int64_t)v);
		else if (v % 10000 == 0) /* ppm: whole percent */
			o = json_object_new_int64((int64_t)(v / 10000));
		else
			o = json_object_new_double((double)v / 10000.0);
		json_object_object_add(j, name, o);
	}
	return j;
}

static json_object *impairments_json(const struct pv_bridge *b)
{
	json_object *j = impair_json(&b->impair);
	json_object *ps = json_object_new_array();
	for (size_t i = 0; i < b->n_pairs; i++) {
		json_object *jp = impair_json(&b->pairs[i].im);
		json_object_object_add(jp, "from", json_object_new_string(b->pairs[i].from));
		json_object_object_add(jp, "to", json_object_new_string(b->pairs[i].to));
		json_object_object_add(jp, "class", json_object_new_int(b->pairs[i].minor));
		json_object_array_add(ps, jp);
	}
	json_object_object_add(j, "pairs", ps);
	return j;
}

static json_object *bridge_json(const struct pv_graph *g, const struct pv_bridge *b)
{
	char s[64];
	json_object *j = json_object_new_object();
	json_object_object_add(j, "name", json_object_new_string(b->name));
	pv_bridge_ifname(b, s);
	json_object_object_add(j, "ifname", json_object_new_string(s));
	snprintf(s, sizeof(s), "10.77.%u.0/24", b->id);
	json_object_object_add(j, "subnet", json_object_new_string(s));
	json_object *ms = json_object_new_array();
	for (size_t i = 0; i < b->n_members; i++) {
		const struct pv_member *m = &b->members[i];
		const struct pv_node *n = pv_graph_node_by_id(g, m->node_id);
		json_object *jm = json_object_new_object();
		json_object_object_add(jm, "node", json_object_new_string(n->name));
		pv_member_ip(b, m, s, sizeof(s));
		json_object_object_add(jm, "ip", json_object_new_string(s));
		pv_mac_format(m->mac, s);
		json_object_object_add(jm, "mac", json_object_new_string(s));
		pv_port_ifname(n->id, b->id, s);
		json_object_object_add(jm, "port", json_object_new_string(s));
		if (m->nic_index >= 0) {
			snprintf(s, sizeof(s), "eth%d", m->nic_index);
			json_object_object_add(jm, "guest_ifname", json_object_new_string(s));
		}
		json_object_object_add(jm, "link", json_object_new_string(m->link_up ? "up" : "down"));
		json_object_object_add(jm, "isolated", json_object_new_boolean(m->isolated));
		json_object_array_add(ms, jm);
	}
	json_object_object_add(j, "members", ms);
	json_object *ps = json_object_new_array();
	for (size_t i = 0; i < b->n_parts; i++) {
		json_object *jp = json_object_new_object();
		json_object_object_add(jp, "from", json_object_new_string(b->parts[i].from));
		json_object_object_add(jp, "to", json_object_new_string(b->parts[i].to));
		json_object_object_add(jp, "directional",
				       json_object_new_boolean(b->parts[i].directional));
		json_object_array_add(ps, jp);
	}
	json_object_object_add(j, "partitions", ps);
	json_object_object_add(j, "impairments", impairments_json(b));
	return j;
}

static int state_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	(void)p;
	json_object *j = json_object_new_object();
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_graph *g = fs->lab->g;
	json_object_object_add(j, "lab", json_object_new_string(fs->lab->name));
	json_object_object_add(j, "netns", json_object_new_string(fs->lab->netns));
	json_object *bs = json_object_new_array();
	for (size_t i = 0; i < g->n_bridges; i++)
		json_object_array_add(bs, bridge_json(g, &g->bridges[i]));
	json_object_object_add(j, "bridges", bs);
	json_object *ns = json_object_new_array();
	for (size_t i = 0; i < g->n_nodes; i++) {
		const struct pv_node *n = &g->nodes[i];
		json_object *jn = json_object_new_object();
		json_object_object_add(jn, "name", json_object_new_string(n->name));
		json_object_object_add(jn, "kind", json_object_new_string(pv_kind_name(n->kind)));
		json_object_object_add(jn, "state", json_object_new_string(pv_state_name(n->state)));
		json_object_object_add(jn, "profile", json_object_new_string(n->profile));
		json_object_array_add(ns, jn);
	}
	json_object_object_add(j, "nodes", ns);
	pthread_mutex_unlock(&fs->lab->lock);
	int rc = pv_buf_printf(out, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
	json_object_put(j);
	return rc;
}

const struct pv_file pv_lab_files[] = {
	{.name = "ctl", .write = ctl_write, .transaction = true},
	{.name = "errors", .render = errors_render},
	{.name = "features", .render = features_render},
	{.name = "state.json", .render = state_render},
	{0},
};
