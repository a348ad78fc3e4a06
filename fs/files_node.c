/* Node files (ctl, state, kind, profile, run) and NIC files
 * (<node>/<bridge>/counters, link, tap, mac, ip, guest_ifname). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "fs/nodes.h"
#include "fs/vm.h"
#include "netcore/parse.h"

static int node_attr_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out,
			    int which)
{
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_node *n = pv_graph_node(fs->lab->g, p->node);
	int rc = -ENOENT;
	if (n) {
		const char *v = which == 0   ? pv_state_name(n->state)
				: which == 1 ? pv_kind_name(n->kind)
					     : n->profile;
		rc = pv_buf_printf(out, "%s\n", v);
	}
	pthread_mutex_unlock(&fs->lab->lock);
	return rc;
}

static int state_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return node_attr_render(fs, p, out, 0);
}

static int kind_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return node_attr_render(fs, p, out, 1);
}

static int profile_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return node_attr_render(fs, p, out, 2);
}

static int console_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return pv_vm_console(fs, p->node, out);
}

static int node_ctl_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			  struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	char *w[2];
	size_t n;
	if (pv_split_words(data, w, 2, &n, err) || n != 1)
		return pv_err_set(err, EINVAL, "write `boot`, `shutdown` or `kill`");
	return pv_nodes_ctl(fs, p->node, w[0], err);
}

static int run_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
		     struct pv_buf *reply, struct pv_err *err)
{
	return pv_nodes_run(fs, p->node, data, len, reply, err);
}

/* ---- NIC files ---- */

struct nic_view {
	char port[16], ip[32], mac[18], guest[16];
	bool up, exists;
};

static int nic_view(struct pv_fs *fs, const struct pv_path *p, struct nic_view *v)
{
	memset(v, 0, sizeof(*v));
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_graph *g = fs->lab->g;
	const struct pv_node *n = pv_graph_node(g, p->node);
	const struct pv_bridge *b = pv_graph_bridge(g, p->bridge);
	const struct pv_member *m = n && b ? pv_bridge_member(b, n->id) : NULL;
	if (m) {
		pv_port_ifname(n->id, b->id, v->port);
		pv_member_ip(b, m, v->ip, sizeof(v->ip));
		pv_mac_format(m->mac, v->mac);
		if (m->nic_index >= 0)
			snprintf(v->guest, sizeof(v->guest), "eth%d", m->nic_index);
		v->up = m->link_up;
		v->exists = pv_node_up(n);
	}
	pthread_mutex_unlock(&fs->lab->lock);
	return m ? 0 : -ENOENT;
}

static int counters_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	struct nic_view v;
	int rc = nic_view(fs, p, &v);
	if (rc)
		return rc;
	struct pv_link_stats s = {0};
	if (v.exists) {
		pthread_mutex_lock(&fs->lab->lock);
		if (pv_links_stats(fs->lab->k.links, v.port, &s))
			memset(&s, 0, sizeof(s)); /* not realized yet: zeros */
		pthread_mutex_unlock(&fs->lab->lock);
	}
	/* the node's view: what the host port sent, the node received */
	return pv_buf_printf(out,
			     "rx_bytes %llu\ntx_bytes %llu\nrx_packets %llu\ntx_packets %llu\nerrors %llu\n",
			     (unsigned long long)s.tx_bytes, (unsigned long long)s.rx_bytes,
			     (unsigned long long)s.tx_packets, (unsigned long long)s.rx_packets,
			     (unsigned long long)(s.rx_errors + s.tx_errors));
}

static int link_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	struct nic_view v;
	int rc = nic_view(fs, p, &v);
	return rc ? rc : pv_buf_printf(out, "%s\n", v.up ? "up" : "down");
}

struct link_arg {
	const char *node, *bridge;
	bool up;
};

static int mutate_link(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct link_arg *a = arg;
	return pv_graph_set_link(g, a->node, a->bridge, a->up, err);
}

static int link_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
		      struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	struct link_arg a = {.node = p->node, .bridge = p->bridge};
	int rc = pv_parse_updown(data, &a.up, err);
	return rc ? rc : pv_lab_change(fs->lab, mutate_link, &a, err);
}

/* One field of the NIC's view as a line; `field` is its offsetof. */
static int nic_line(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out, size_t field)
{
	struct nic_view v;
	int rc = nic_view(fs, p, &v);
	return rc ? rc : pv_buf_printf(out, "%s\n", (const char *)&v + field);
}

static int tap_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return nic_line(fs, p, out, offsetof(struct nic_view, port));
}

static int mac_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return nic_line(fs, p, out, offsetof(struct nic_view, mac));
}

static int ip_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	return nic_line(fs, p, out, offsetof(struct nic_view, ip));
}

static int guest_ifname_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	struct nic_view v;
	int rc = nic_view(fs, p, &v);
	/* empty until the node is up and the NIC has its place */
	return rc ? rc : pv_buf_printf(out, "%s%s", v.guest, v.guest[0] ? "\n" : "");
}

const struct pv_file pv_node_files[] = {
	{.name = "ctl", .write = node_ctl_write, .transaction = true},
	{.name = "state", .render = state_render},
	{.name = "kind", .render = kind_render},
	{.name = "profile", .render = profile_render},
	{.name = "run", .write = run_write, .transaction = true},
	{.name = "console.log", .render = console_render},
	{0},
};

const struct pv_file pv_nic_files[] = {
	{.name = "counters", .render = counters_render},
	{.name = "link", .render = link_render, .write = link_write},
	{.name = "tap", .render = tap_render},
	{.name = "mac", .render = mac_render},
	{.name = "ip", .render = ip_render},
	{.name = "guest_ifname", .render = guest_ifname_render},
	{0},
};
