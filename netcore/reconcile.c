#include "netcore/reconcile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netcore/impair.h"
#include "netcore/netns.h"

/* Impairments have a section of their own, near the end. */
static void plan_impairments(const struct pv_graph *g, struct pv_plan *d);
static void qdisc_recs_free(struct pv_qdisc_rec *r, size_t n);
static void qdisc_forget(struct pv_applied *ap, const char *ifname);
static int sync_qdiscs(struct pv_kernel *k, const struct pv_plan *d, struct pv_err *err);

/* ---- the desired kernel objects of a graph ---- */



void pv_plan_free(struct pv_plan *d)
{
	free(d->bridges);
	free(d->ports);
	free(d->netns_nodes);
	free(d->drop);
	free(d->oneway);
	free(d->isolated);
	qdisc_recs_free(d->qdiscs, d->n_qdiscs);
	free(d->prio);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

/* The port of `node` on `b`, if the node is a member and up. */
static const struct pv_member *live_member(const struct pv_graph *g, const struct pv_bridge *b,
					   const char *node)
{
	const struct pv_node *n = pv_graph_node(g, node);
	if (!n || !pv_node_up(n))
		return NULL;
	return pv_bridge_member(b, n->id);
}

static void pair_of(const struct pv_bridge *b, const struct pv_member *x,
		    const struct pv_member *y, struct pv_nft_pair *p)
{
	pv_port_ifname(x->node_id, b->id, p->in);
	pv_port_ifname(y->node_id, b->id, p->out);
}

static void desired_partitions(const struct pv_graph *g, const struct pv_bridge *b,
			       struct pv_plan *d)
{
	for (size_t i = 0; i < b->n_parts; i++) {
		const struct pv_partition *p = &b->parts[i];
		const struct pv_member *x = live_member(g, b, p->from);
		const struct pv_member *y = live_member(g, b, p->to);
		if (!x || !y)
			continue; /* enforced once both are attached and up */
		if (p->directional) {
			pair_of(b, x, y, &d->oneway[d->n_oneway++]);
		} else {
			pair_of(b, x, y, &d->drop[d->n_drop++]);
			pair_of(b, y, x, &d->drop[d->n_drop++]);
		}
	}
}

void pv_plan_compute(const struct pv_graph *g, struct pv_plan *d)
{
	size_t n_members = 0, n_parts = 0;
	for (size_t i = 0; i < g->n_bridges; i++) {
		n_members += g->bridges[i].n_members;
		n_parts += g->bridges[i].n_parts;
	}
	memset(d, 0, sizeof(*d));
	d->bridges = xcalloc(g->n_bridges, sizeof(*d->bridges));
	d->ports = xcalloc(n_members, sizeof(*d->ports));
	d->netns_nodes = xcalloc(g->n_nodes, sizeof(*d->netns_nodes));
	d->drop = xcalloc(2 * n_parts, sizeof(*d->drop));
	d->oneway = xcalloc(n_parts, sizeof(*d->oneway));
	d->isolated = xcalloc(n_members, sizeof(*d->isolated));

	for (size_t i = 0; i < g->n_nodes; i++) {
		const struct pv_node *n = &g->nodes[i];
		if (n->kind == PV_NODE_NETNS && pv_node_up(n))
			memcpy(d->netns_nodes[d->n_netns++], n->name, sizeof(pv_name));
	}
	for (size_t i = 0; i < g->n_bridges; i++) {
		const struct pv_bridge *b = &g->bridges[i];
		pv_bridge_ifname(b, d->bridges[d->n_bridges++]);
		for (size_t j = 0; j < b->n_members; j++) {
			const struct pv_member *m = &b->members[j];
			const struct pv_node *n = pv_graph_node_by_id(g, m->node_id);
			if (!pv_node_up(n))
				continue;
			struct pv_port_rec *p = &d->ports[d->n_ports++];
			p->tap = n->kind == PV_NODE_QEMU;
			p->bridge_id = b->id;
			pv_port_ifname(n->id, b->id, p->ifname);
			pv_bridge_ifname(b, p->master);
			memcpy(p->node, n->name, sizeof(pv_name));
			snprintf(p->peer_ifname, sizeof(p->peer_ifname), "eth%d", m->nic_index);
			memcpy(p->mac, m->mac, 6);
			pv_member_cidr(b, m, p->cidr, sizeof(p->cidr));
			p->up = m->link_up;
			if (m->isolated)
				memcpy(d->isolated[d->n_isolated++], p->ifname, 16);
		}
		desired_partitions(g, b, d);
	}
	plan_impairments(g, d);
}

/* ---- applied-state bookkeeping ---- */

static bool has_name16(char (*list)[16], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

static bool has_node(const pv_name *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

static const struct pv_port_rec *find_port(const struct pv_port_rec *ports, size_t n,
					   const char *ifname)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ports[i].ifname, ifname))
			return &ports[i];
	return NULL;
}

/* Everything but `up` needs a new veth to change. A TAP's guest-side name
 * and address are the agent's business, not the port's. */
static bool port_same_shape(const struct pv_port_rec *a, const struct pv_port_rec *b)
{
	if (a->tap != b->tap || strcmp(a->master, b->master) || strcmp(a->node, b->node) ||
	    memcmp(a->mac, b->mac, 6))
		return false;
	return a->tap || (!strcmp(a->peer_ifname, b->peer_ifname) && !strcmp(a->cidr, b->cidr));
}

#define AP_PUSH(arr, n, val)                                                    \
	do {                                                                    \
		void *p_ = realloc((arr), ((n) + 1) * sizeof(*(arr)));          \
		if (!p_)                                                        \
			abort();                                                \
		(arr) = p_;                                                     \
		memcpy(&(arr)[(n)++], (val), sizeof(*(arr)));                   \
	} while (0)

#define AP_DROP(arr, n, i)                                                      \
	do {                                                                    \
		memmove(&(arr)[i], &(arr)[(i) + 1], ((n) - (i)-1) * sizeof(*(arr))); \
		(n)--;                                                          \
	} while (0)

void pv_applied_free(struct pv_applied *ap)
{
	for (size_t i = 0; i < ap->n_hosts; i++)
		free(ap->hosts[i].text);
	free(ap->hosts);
	free(ap->bridges);
	free(ap->ports);
	free(ap->netns_nodes);
	qdisc_recs_free(ap->qdiscs, ap->n_qdiscs);
	memset(ap, 0, sizeof(*ap));
}

/* ---- steps ---- */

static int remove_stale_ports(struct pv_kernel *k, const struct pv_plan *d, struct pv_err *err)
{
	struct pv_applied *ap = &k->ap;
	for (size_t i = ap->n_ports; i-- > 0;) {
		const struct pv_port_rec *want = find_port(d->ports, d->n_ports, ap->ports[i].ifname);
		if (want && port_same_shape(want, &ap->ports[i]))
			continue;
		/* a veth whose node's namespace goes too is deleted with it: the
		 * kernel tears a namespace's devices down in one batch, much
		 * faster than one RTM_DELLINK (and RCU grace period) each */
		if (!want && !ap->ports[i].tap &&
		    !has_node(d->netns_nodes, d->n_netns, ap->ports[i].node))
			continue;
		if (ap->ports[i].tap && k->vm)
			k->vm->nic_unplug(k->vm->ctx, &ap->ports[i]);
		int rc = pv_links_del(k->links, ap->ports[i].ifname, err);
		if (rc)
			return rc;
		qdisc_forget(ap, ap->ports[i].ifname);
		AP_DROP(ap->ports, ap->n_ports, i);
	}
	return 0;
}

static int sync_node_netns(struct pv_kernel *k, const struct pv_plan *d, bool adding,
			   struct pv_err *err)
{
	struct pv_applied *ap = &k->ap;
	char ns[96];
	if (!adding) {
		for (size_t i = ap->n_netns; i-- > 0;) {
			if (has_node(d->netns_nodes, d->n_netns, ap->netns_nodes[i]))
				continue;
			pv_node_netns_name(k->lab, ap->netns_nodes[i], ns, sizeof(ns));
			int rc = pv_netns_delete(ns);
			if (rc)
				return pv_err_set(err, -rc, "cannot delete namespace %s: %s", ns,
						  strerror(-rc));
			/* its veth peers went with it, and so did their host ends */
			for (size_t j = ap->n_ports; j-- > 0;)
				if (!strcmp(ap->ports[j].node, ap->netns_nodes[i])) {
					qdisc_forget(ap, ap->ports[j].ifname);
					AP_DROP(ap->ports, ap->n_ports, j);
				}
			AP_DROP(ap->netns_nodes, ap->n_netns, i);
		}
		return 0;
	}
	for (size_t i = 0; i < d->n_netns; i++) {
		if (has_node(ap->netns_nodes, ap->n_netns, d->netns_nodes[i]))
			continue;
		pv_node_netns_name(k->lab, d->netns_nodes[i], ns, sizeof(ns));
		int rc = pv_netns_create(ns);
		if (rc == -EEXIST) /* left by a killed daemon of this lab: start clean */
			rc = pv_netns_delete(ns) ?: pv_netns_create(ns);
		if (rc)
			return pv_err_set(err, -rc, "cannot create namespace %s: %s", ns,
					  strerror(-rc));
		AP_PUSH(ap->netns_nodes, ap->n_netns, &d->netns_nodes[i]);
	}
	return 0;
}

static int add_tap(struct pv_kernel *k, const struct pv_port_rec *p, struct pv_err *err)
{
	int rc = pv_links_tap_add(k->links, p->ifname, p->master, err);
	if (!rc && k->vm) {
		rc = k->vm->nic_plug(k->vm->ctx, p, err);
		if (rc)
			pv_links_del(k->links, p->ifname, NULL);
	}
	return rc;
}

static int add_port(struct pv_kernel *k, const struct pv_port_rec *p, struct pv_err *err)
{
	if (p->tap)
		return add_tap(k, p, err);
	char ns[96];
	pv_node_netns_name(k->lab, p->node, ns, sizeof(ns));
	int fd = pv_netns_open(ns);
	if (fd < 0)
		return pv_err_set(err, -fd, "cannot open namespace %s: %s", ns, strerror(-fd));
	struct pv_veth_spec s = {
		.host_ifname = p->ifname,
		.master = p->master,
		.host_up = p->up,
		.peer_nsfd = fd,
		.peer_ifname = p->peer_ifname,
		.peer_cidr = p->cidr,
	};
	memcpy(s.peer_mac, p->mac, 6);
	int rc = pv_links_veth_add(k->links, &s, err);
	close(fd);
	return rc;
}

static int add_and_update_ports(struct pv_kernel *k, const struct pv_plan *d, struct pv_err *err)
{
	struct pv_applied *ap = &k->ap;
	for (size_t i = 0; i < d->n_ports; i++) {
		const struct pv_port_rec *want = &d->ports[i];
		struct pv_port_rec *have = (struct pv_port_rec *)find_port(ap->ports, ap->n_ports,
									   want->ifname);
		int rc = 0;
		if (!have) {
			rc = add_port(k, want, err);
			if (!rc)
				AP_PUSH(ap->ports, ap->n_ports, want);
		} else if (have->up != want->up) {
			/* a netns node loses carrier with its veth's host end; a
			 * VM through QMP set_link */
			if (want->tap)
				rc = k->vm ? k->vm->set_link(k->vm->ctx, want, err) : 0;
			else
				rc = pv_links_set_up(k->links, want->ifname, want->up, err);
			if (!rc)
				have->up = want->up;
		} else if (have->tap) {
			/* guest-side name and address may change under the same TAP */
			*have = *want;
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int sync_bridges(struct pv_kernel *k, const struct pv_plan *d, bool adding,
			struct pv_err *err)
{
	struct pv_applied *ap = &k->ap;
	if (adding) {
		for (size_t i = 0; i < d->n_bridges; i++) {
			if (has_name16(ap->bridges, ap->n_bridges, d->bridges[i]))
				continue;
			int rc = pv_links_bridge_add(k->links, d->bridges[i], err);
			if (rc)
				return rc;
			AP_PUSH(ap->bridges, ap->n_bridges, &d->bridges[i]);
		}
		return 0;
	}
	for (size_t i = ap->n_bridges; i-- > 0;) {
		if (has_name16(d->bridges, d->n_bridges, ap->bridges[i]))
			continue;
		int rc = pv_links_del(k->links, ap->bridges[i], err);
		if (rc)
			return rc;
		AP_DROP(ap->bridges, ap->n_bridges, i);
	}
	return 0;
}

static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	int rc = (w == (ssize_t)len) ? 0 : -EIO;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* Each up netns node gets its /etc/hosts; `run` bind-mounts it. */
static int sync_hosts(struct pv_kernel *k, const struct pv_graph *g, struct pv_err *err)
{
	struct pv_applied *ap = &k->ap;
	char path[4096];
	for (size_t i = ap->n_hosts; i-- > 0;) {
		const struct pv_node *n = pv_graph_node(g, ap->hosts[i].node);
		if (n && n->kind == PV_NODE_NETNS && pv_node_up(n))
			continue;
		pv_node_hosts_path(k->node_dir, ap->hosts[i].node, path, sizeof(path));
		unlink(path);
		free(ap->hosts[i].text);
		AP_DROP(ap->hosts, ap->n_hosts, i);
	}
	for (size_t i = 0; i < g->n_nodes; i++) {
		const struct pv_node *n = &g->nodes[i];
		if (n->kind != PV_NODE_NETNS || !pv_node_up(n))
			continue;
		char *text = pv_hosts_render(g, n);
		if (!text)
			return pv_err_set(err, ENOMEM, "out of memory rendering hosts of %s", n->name);
		struct pv_hosts_rec *have = NULL;
		for (size_t j = 0; j < ap->n_hosts && !have; j++)
			if (!strcmp(ap->hosts[j].node, n->name))
				have = &ap->hosts[j];
		if (have && !strcmp(have->text, text)) {
			free(text);
			continue;
		}
		pv_node_hosts_path(k->node_dir, n->name, path, sizeof(path));
		int rc = write_file_atomic(path, text);
		if (rc) {
			free(text);
			return pv_err_set(err, -rc, "cannot write %s: %s", path, strerror(-rc));
		}
		if (have) {
			free(have->text);
			have->text = text;
		} else {
			struct pv_hosts_rec rec = {.text = text};
			memcpy(rec.node, n->name, sizeof(pv_name));
			AP_PUSH(ap->hosts, ap->n_hosts, &rec);
		}
	}
	return 0;
}

static int sync_nft(struct pv_kernel *k, const struct pv_plan *d, struct pv_err *err)
{
	if (!k->nft)
		return 0;
	struct pv_nft_state s = {
		.drop = d->drop, .n_drop = d->n_drop,
		.oneway = d->oneway, .n_oneway = d->n_oneway,
		.isolated = (const char(*)[16])d->isolated, .n_isolated = d->n_isolated,
		.prio = d->prio, .n_prio = d->n_prio,
	};
	return pv_nft_apply(k->nft, &s, err);
}

/* ---- impairments: each port's qdisc tree, and the prio map ---- */

static const struct pv_bridge *bridge_of_port(const struct pv_graph *g,
					      const struct pv_port_rec *p)
{
	char ifname[16];
	for (size_t i = 0; i < g->n_bridges; i++) {
		pv_bridge_ifname(&g->bridges[i], ifname);
		if (!strcmp(ifname, p->master))
			return &g->bridges[i];
	}
	return NULL;
}

/* A frame leaves through the port of the node it goes to: the whole-bridge
 * shape is every port's default class, and a pair `a -> b` is a class on
 * b's port (DESIGN.md "Impairments, placed right"). */
static void plan_port_qdisc(const struct pv_graph *g, const struct pv_port_rec *p,
			    struct pv_qdisc_rec *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->ifname, p->ifname, sizeof(r->ifname));
	const struct pv_bridge *b = bridge_of_port(g, p);
	if (!b)
		return;
	r->dflt = pv_impair_shape(&b->impair);
	r->classes = xcalloc(b->n_pairs, sizeof(*r->classes));
	for (size_t i = 0; i < b->n_pairs; i++) {
		const struct pv_pair_impair *pi = &b->pairs[i];
		if (strcmp(pi->to, p->node) || !live_member(g, b, pi->from))
			continue;
		struct pv_qdisc_class *c = &r->classes[r->n_classes++];
		c->minor = pi->minor;
		c->shape = pv_impair_shape(&pi->im);
	}
}

static void plan_prio(const struct pv_graph *g, const struct pv_bridge *b, struct pv_plan *d)
{
	for (size_t i = 0; i < b->n_pairs; i++) {
		const struct pv_pair_impair *pi = &b->pairs[i];
		const struct pv_member *x = live_member(g, b, pi->from);
		const struct pv_member *y = live_member(g, b, pi->to);
		if (!x || !y)
			continue; /* enforced once both are up again */
		struct pv_nft_prio *e = &d->prio[d->n_prio++];
		pair_of(b, x, y, &e->pair);
		e->classid = PV_QDISC_CLASSID(pi->minor);
	}
}

static void plan_impairments(const struct pv_graph *g, struct pv_plan *d)
{
	size_t n_pairs = 0;
	for (size_t i = 0; i < g->n_bridges; i++)
		n_pairs += g->bridges[i].n_pairs;
	d->qdiscs = xcalloc(d->n_ports, sizeof(*d->qdiscs));
	for (size_t i = 0; i < d->n_ports; i++)
		plan_port_qdisc(g, &d->ports[i], &d->qdiscs[d->n_qdiscs++]);
	d->prio = xcalloc(n_pairs, sizeof(*d->prio));
	for (size_t i = 0; i < g->n_bridges; i++)
		plan_prio(g, &g->bridges[i], d);
}

static void qdisc_recs_free(struct pv_qdisc_rec *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].classes);
	free(r);
}

/* Field by field: a pv_shape has padding. */
static bool shape_eq(const struct pv_shape *a, const struct pv_shape *b)
{
	return a->rate_bps == b->rate_bps && !memcmp(&a->netem, &b->netem, sizeof(a->netem));
}

static bool qdisc_empty(const struct pv_qdisc_rec *r)
{
	static const struct pv_shape zero;
	return r->n_classes == 0 && shape_eq(&r->dflt, &zero);
}

static bool qdisc_same(const struct pv_qdisc_rec *a, const struct pv_qdisc_rec *b)
{
	if (a->unknown || b->unknown || a->n_classes != b->n_classes || !shape_eq(&a->dflt, &b->dflt))
		return false;
	for (size_t i = 0; i < a->n_classes; i++) {
		bool found = false;
		for (size_t j = 0; j < b->n_classes && !found; j++)
			found = a->classes[i].minor == b->classes[j].minor &&
				shape_eq(&a->classes[i].shape, &b->classes[j].shape);
		if (!found)
			return false;
	}
	return true;
}

static struct pv_qdisc_rec *qdisc_find(struct pv_applied *ap, const char *ifname)
{
	for (size_t i = 0; i < ap->n_qdiscs; i++)
		if (!strcmp(ap->qdiscs[i].ifname, ifname))
			return &ap->qdiscs[i];
	return NULL;
}

/* The port is gone (or about to be re-made): so is its tree. */
static void qdisc_forget(struct pv_applied *ap, const char *ifname)
{
	struct pv_qdisc_rec *r = qdisc_find(ap, ifname);
	if (!r)
		return;
	free(r->classes);
	AP_DROP(ap->qdiscs, ap->n_qdiscs, (size_t)(r - ap->qdiscs));
}

static void qdisc_record(struct pv_applied *ap, const struct pv_qdisc_rec *want, bool unknown)
{
	qdisc_forget(ap, want->ifname);
	if (!unknown && qdisc_empty(want))
		return;
	struct pv_qdisc_rec r = *want;
	r.unknown = unknown;
	r.classes = xcalloc(want->n_classes, sizeof(*r.classes));
	memcpy(r.classes, want->classes, want->n_classes * sizeof(*r.classes));
	AP_PUSH(ap->qdiscs, ap->n_qdiscs, &r);
}

/* Only ports whose spec changed are touched: a latency change on one bridge
 * is a netem change on that bridge's ports and nothing else. */
static int sync_qdiscs(struct pv_kernel *k, const struct pv_plan *d, struct pv_err *err)
{
	if (!k->links)
		return 0;
	struct nl_sock *sk = pv_links_sock(k->links);
	for (size_t i = 0; i < d->n_qdiscs; i++) {
		const struct pv_qdisc_rec *want = &d->qdiscs[i];
		const struct pv_qdisc_rec *have = qdisc_find(&k->ap, want->ifname);
		if (have ? qdisc_same(have, want) : qdisc_empty(want))
			continue;
		struct pv_port_qdisc spec = {
			.dflt = want->dflt, .n_classes = want->n_classes, .classes = want->classes,
		};
		int rc = pv_qdisc_apply(sk, want->ifname, &spec, err);
		/* a failed apply may have changed part of the tree: the next
		 * reconcile (the rollback) applies whatever it wants, even empty */
		qdisc_record(&k->ap, want, rc != 0);
		if (rc)
			return rc;
	}
	return 0;
}

int pv_reconcile(struct pv_kernel *k, const struct pv_graph *g, struct pv_err *err)
{
	struct pv_plan d;
	pv_plan_compute(g, &d);
	/* Drop rules first and removals before additions: a port that changes
	 * shape is deleted and re-made, and a rule never names a stale port. */
	int rc = sync_nft(k, &d, err);
	if (!rc)
		rc = remove_stale_ports(k, &d, err);
	if (!rc)
		rc = sync_node_netns(k, &d, false, err);
	if (!rc)
		rc = sync_bridges(k, &d, true, err);
	if (!rc)
		rc = sync_node_netns(k, &d, true, err);
	if (!rc)
		rc = add_and_update_ports(k, &d, err);
	if (!rc)
		rc = sync_qdiscs(k, &d, err);
	if (!rc)
		rc = sync_hosts(k, g, err);
	if (!rc)
		rc = sync_bridges(k, &d, false, err);
	pv_plan_free(&d);
	return rc;
}
