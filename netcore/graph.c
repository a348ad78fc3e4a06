#include "netcore/graph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcore/impair.h"

#define GROW(arr, n, cap)                                                          \
	do {                                                                       \
		if ((n) == (cap)) {                                                \
			size_t c_ = (cap) ? (cap)*2 : 8;                           \
			void *p_ = realloc((arr), c_ * sizeof(*(arr)));            \
			if (!p_)                                                   \
				abort(); /* a lab manager out of memory can't roll back */ \
			(arr) = p_;                                                \
			(cap) = c_;                                                \
		}                                                                  \
	} while (0)

#define REMOVE_AT(arr, n, i)                                                       \
	do {                                                                       \
		memmove(&(arr)[i], &(arr)[(i) + 1], ((n) - (i)-1) * sizeof(*(arr))); \
		(n)--;                                                             \
	} while (0)

static void *dup_array(const void *src, size_t n, size_t size, size_t *cap)
{
	*cap = n;
	if (!n)
		return NULL;
	void *p = malloc(n * size);
	if (!p)
		abort();
	memcpy(p, src, n * size);
	return p;
}

struct pv_graph *pv_graph_new(uint32_t mac_prefix)
{
	struct pv_graph *g = calloc(1, sizeof(*g));
	if (!g)
		abort();
	g->next_node_id = 1;
	g->mac_prefix = mac_prefix & 0xffffff;
	return g;
}

struct pv_graph *pv_graph_clone(const struct pv_graph *g)
{
	struct pv_graph *c = malloc(sizeof(*c));
	if (!c)
		abort();
	*c = *g;
	c->nodes = dup_array(g->nodes, g->n_nodes, sizeof(*g->nodes), &c->cap_nodes);
	c->bridges = dup_array(g->bridges, g->n_bridges, sizeof(*g->bridges), &c->cap_bridges);
	for (size_t i = 0; i < c->n_bridges; i++) {
		struct pv_bridge *b = &c->bridges[i];
		b->members = dup_array(b->members, b->n_members, sizeof(*b->members),
				       &b->cap_members);
		b->parts = dup_array(b->parts, b->n_parts, sizeof(*b->parts), &b->cap_parts);
		b->pairs = dup_array(b->pairs, b->n_pairs, sizeof(*b->pairs), &b->cap_pairs);
	}
	return c;
}

static void bridge_free(struct pv_bridge *b)
{
	free(b->members);
	free(b->parts);
	free(b->pairs);
}

void pv_graph_free(struct pv_graph *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_bridges; i++)
		bridge_free(&g->bridges[i]);
	free(g->bridges);
	free(g->nodes);
	free(g);
}

bool pv_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > PV_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int name_check(const char *name, struct pv_err *err)
{
	if (!pv_name_valid(name))
		return pv_err_set(err, EINVAL,
				  "invalid name `%.40s`: use 1-32 of a-z 0-9 _ -, starting with a letter or digit",
				  name);
	return 0;
}

struct pv_node *pv_graph_node(const struct pv_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].name, name))
			return &g->nodes[i];
	return NULL;
}

struct pv_node *pv_graph_node_by_id(const struct pv_graph *g, unsigned id)
{
	for (size_t i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].id == id)
			return &g->nodes[i];
	return NULL;
}

struct pv_bridge *pv_graph_bridge(const struct pv_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_bridges; i++)
		if (!strcmp(g->bridges[i].name, name))
			return &g->bridges[i];
	return NULL;
}

struct pv_member *pv_bridge_member(const struct pv_bridge *b, unsigned node_id)
{
	for (size_t i = 0; i < b->n_members; i++)
		if (b->members[i].node_id == node_id)
			return &b->members[i];
	return NULL;
}

/* Names of the files that sit beside bridge and node directories. */
static const char *const reserved[] = {"ctl",   "errors", "features", "events", "metrics",
				       "state", "kind",   "profile",  "run",    NULL};

static int name_free(const struct pv_graph *g, const char *name, struct pv_err *err)
{
	int rc = name_check(name, err);
	if (rc)
		return rc;
	for (const char *const *r = reserved; *r; r++)
		if (!strcmp(name, *r))
			return pv_err_set(err, EINVAL, "`%s` is the name of a lab file: pick another name",
					  name);
	if (pv_graph_node(g, name))
		return pv_err_set(err, EEXIST, "`%s` already exists as a node: pick another name",
				  name);
	if (pv_graph_bridge(g, name))
		return pv_err_set(err, EEXIST, "`%s` already exists as a bridge: pick another name",
				  name);
	return 0;
}

static struct pv_bridge *bridge_get(const struct pv_graph *g, const char *name,
				    struct pv_err *err)
{
	struct pv_bridge *b = pv_graph_bridge(g, name);
	if (!b)
		pv_err_set(err, ENOENT, "no bridge named `%.40s`: mkdir it first", name);
	return b;
}

static struct pv_node *node_get(const struct pv_graph *g, const char *name, struct pv_err *err)
{
	struct pv_node *n = pv_graph_node(g, name);
	if (!n) {
		if (name_check(name, err) == 0)
			pv_err_set(err, ENOENT,
				   "no node named `%s`: create it first (`netns %s` or `vm %s` in ctl)",
				   name, name, name);
	}
	return n;
}

int pv_graph_add_bridge(struct pv_graph *g, const char *name, struct pv_err *err)
{
	int rc = name_free(g, name, err);
	if (rc)
		return rc;
	/* lowest free id: the bridge's subnet 10.77.<id>.0/24 */
	unsigned id = 1;
	for (;; id++) {
		bool used = false;
		for (size_t i = 0; i < g->n_bridges; i++)
			used |= g->bridges[i].id == id;
		if (!used)
			break;
	}
	if (id > 255)
		return pv_err_set(err, ENOSPC, "a lab holds at most 255 bridges: remove one first");
	GROW(g->bridges, g->n_bridges, g->cap_bridges);
	struct pv_bridge *b = &g->bridges[g->n_bridges++];
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->id = id;
	return 0;
}

int pv_graph_del_bridge(struct pv_graph *g, const char *name, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, name, err);
	if (!b)
		return -err->code;
	if (b->n_members) {
		char list[256] = "";
		for (size_t i = 0; i < b->n_members; i++) {
			struct pv_node *n = pv_graph_node_by_id(g, b->members[i].node_id);
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s", l ? " " : "", n ? n->name : "?");
		}
		return pv_err_set(err, EBUSY,
				  "bridge `%s` still has members (%s): write them to %s/detach first",
				  name, list, name);
	}
	size_t i = (size_t)(b - g->bridges);
	bridge_free(b);
	REMOVE_AT(g->bridges, g->n_bridges, i);
	return 0;
}

int pv_graph_add_node(struct pv_graph *g, const char *name, enum pv_node_kind kind,
		      struct pv_err *err)
{
	int rc = name_free(g, name, err);
	if (rc)
		return rc;
	GROW(g->nodes, g->n_nodes, g->cap_nodes);
	struct pv_node *n = &g->nodes[g->n_nodes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->id = g->next_node_id++;
	n->kind = kind;
	n->state = PV_STATE_CREATED;
	snprintf(n->profile, sizeof(n->profile), "%s", kind == PV_NODE_NETNS ? "netns" : "default");
	n->memory_mb = 256;
	n->cpus = 1;
	return 0;
}

static void member_remove(struct pv_bridge *b, const struct pv_node *n)
{
	struct pv_member *m = pv_bridge_member(b, n->id);
	if (!m)
		return;
	REMOVE_AT(b->members, b->n_members, (size_t)(m - b->members));
	/* every partition that names the node goes with its port */
	for (size_t i = b->n_parts; i-- > 0;)
		if (!strcmp(b->parts[i].from, n->name) || !strcmp(b->parts[i].to, n->name))
			REMOVE_AT(b->parts, b->n_parts, i);
	/* and so does every per-pair impairment */
	for (size_t i = b->n_pairs; i-- > 0;)
		if (!strcmp(b->pairs[i].from, n->name) || !strcmp(b->pairs[i].to, n->name))
			REMOVE_AT(b->pairs, b->n_pairs, i);
}

int pv_graph_del_node(struct pv_graph *g, const char *name, struct pv_err *err)
{
	struct pv_node *n = node_get(g, name, err);
	if (!n)
		return -err->code;
	for (size_t i = 0; i < g->n_bridges; i++)
		member_remove(&g->bridges[i], n);
	REMOVE_AT(g->nodes, g->n_nodes, (size_t)(n - g->nodes));
	return 0;
}

bool pv_node_up(const struct pv_node *n)
{
	if (n->kind == PV_NODE_NETNS)
		return n->state == PV_STATE_BOOTED;
	return n->state == PV_STATE_BOOTING || n->state == PV_STATE_BOOTED;
}

static bool nic_index_used(const struct pv_graph *g, unsigned node_id, int idx)
{
	for (size_t i = 0; i < g->n_bridges; i++) {
		const struct pv_member *m = pv_bridge_member(&g->bridges[i], node_id);
		if (m && m->nic_index == idx)
			return true;
	}
	return false;
}

static void assign_nic_index(struct pv_graph *g, unsigned node_id, struct pv_member *m)
{
	int idx = 0;
	while (nic_index_used(g, node_id, idx))
		idx++;
	m->nic_index = idx;
}

static int cmp_bridge_name(const void *a, const void *b)
{
	const struct pv_bridge *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

void pv_graph_set_state(struct pv_graph *g, struct pv_node *n, enum pv_node_state state)
{
	bool was_up = pv_node_up(n);
	n->state = state;
	bool up = pv_node_up(n);
	if (was_up == up)
		return;
	if (!up) {
		for (size_t i = 0; i < g->n_bridges; i++) {
			struct pv_member *m = pv_bridge_member(&g->bridges[i], n->id);
			if (m)
				m->nic_index = -1;
		}
		return;
	}
	/* coming up: NICs in bridge-name order, eth0 first */
	struct pv_bridge **sorted = calloc(g->n_bridges ? g->n_bridges : 1, sizeof(*sorted));
	if (!sorted)
		abort();
	for (size_t i = 0; i < g->n_bridges; i++)
		sorted[i] = &g->bridges[i];
	qsort(sorted, g->n_bridges, sizeof(*sorted), cmp_bridge_name);
	for (size_t i = 0; i < g->n_bridges; i++) {
		struct pv_member *m = pv_bridge_member(sorted[i], n->id);
		if (m && m->nic_index < 0)
			assign_nic_index(g, n->id, m);
	}
	free(sorted);
}

static unsigned free_host(const struct pv_bridge *b)
{
	for (unsigned h = PV_HOST_MIN; h <= PV_HOST_MAX; h++) {
		bool used = false;
		for (size_t i = 0; i < b->n_members && !used; i++)
			used = b->members[i].host == h;
		if (!used)
			return h;
	}
	return 0;
}

static bool names_dup(char **names, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(names[j], names[i]))
			return true;
	return false;
}

/* Validate a whole attach (members = false) or detach (members = true)
 * before any of it is recorded: every name a node, none twice, and each
 * one's membership as the operation needs it. */
static int check_names(const struct pv_graph *g, const struct pv_bridge *b, char **names, size_t n,
		       bool members, struct pv_err *err)
{
	if (n == 0)
		return pv_err_set(err, EINVAL, "no names given: write one or more node names");
	for (size_t i = 0; i < n; i++) {
		struct pv_node *node = node_get(g, names[i], err);
		if (!node)
			return -err->code;
		if (names_dup(names, i))
			return pv_err_set(err, EINVAL, "`%s` is named twice: name each node once",
					  names[i]);
		bool member = pv_bridge_member(b, node->id) != NULL;
		if (member && !members)
			return pv_err_set(err, EEXIST, "`%s` is already attached to `%s`", names[i],
					  b->name);
		if (!member && members)
			return pv_err_set(err, ENOENT, "`%s` is not attached to `%s`", names[i],
					  b->name);
	}
	return 0;
}

int pv_graph_attach(struct pv_graph *g, const char *bridge, char **names, size_t n,
		    struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	int rc = check_names(g, b, names, n, false, err);
	if (rc)
		return rc;
	if (b->n_members + n > PV_HOST_MAX - PV_HOST_MIN + 1)
		return pv_err_set(err, ENOSPC, "bridge `%s` is full (%d nodes): use another bridge",
				  bridge, PV_HOST_MAX - PV_HOST_MIN + 1);
	for (size_t i = 0; i < n; i++) {
		struct pv_node *node = pv_graph_node(g, names[i]);
		GROW(b->members, b->n_members, b->cap_members);
		struct pv_member *m = &b->members[b->n_members];
		memset(m, 0, sizeof(*m));
		m->node_id = node->id;
		m->host = free_host(b);
		b->n_members++;
		/* Locally administered unicast; 16 bits of the daemon, then the
		 * node and the bridge, so a NIC that is detached and attached
		 * again keeps its MAC, like a real one. */
		uint8_t mac[6] = {0x0a, (uint8_t)(g->mac_prefix >> 8), (uint8_t)g->mac_prefix,
				  (uint8_t)(node->id >> 8), (uint8_t)node->id, (uint8_t)b->id};
		memcpy(m->mac, mac, 6);
		m->nic_index = -1;
		m->link_up = true;
		if (pv_node_up(node))
			assign_nic_index(g, node->id, m);
	}
	return 0;
}

int pv_graph_detach(struct pv_graph *g, const char *bridge, char **names, size_t n,
		    struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	int rc = check_names(g, b, names, n, true, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		member_remove(b, pv_graph_node(g, names[i]));
	return 0;
}

static struct pv_partition *part_find(const struct pv_bridge *b, const char *from,
				      const char *to, bool directional)
{
	for (size_t i = 0; i < b->n_parts; i++) {
		struct pv_partition *p = &b->parts[i];
		if (p->directional == directional && !strcmp(p->from, from) && !strcmp(p->to, to))
			return p;
	}
	return NULL;
}

bool pv_bridge_partitioned(const struct pv_bridge *b, const char *from, const char *to)
{
	const char *lo = strcmp(from, to) < 0 ? from : to, *hi = lo == from ? to : from;
	return part_find(b, lo, hi, false) || part_find(b, from, to, true);
}

/* A directional partition needs both ends attached and up: its rule acts on
 * their ports, which must exist. */
static int endpoint_ready(const struct pv_graph *g, const struct pv_bridge *b, const char *name,
			  struct pv_err *err)
{
	struct pv_node *n = node_get(g, name, err);
	if (!n)
		return -err->code;
	if (!pv_bridge_member(b, n->id))
		return pv_err_set(err, ENOENT,
				  "`%s` is not attached to `%s`: call bridge:attach first (write %s to %s/attach)",
				  name, b->name, name, b->name);
	if (!pv_node_up(n))
		return pv_err_set(err, ENOENT,
				  "`%s` is not up (state %s): call bridge:attach first and boot it (write boot to %s/ctl)",
				  name, pv_state_name(n->state), name);
	return 0;
}

int pv_graph_partition(struct pv_graph *g, const char *bridge, const char *a, const char *b,
		       bool directional, bool add, struct pv_err *err)
{
	struct pv_bridge *br = bridge_get(g, bridge, err);
	if (!br)
		return -err->code;
	int rc = name_check(a, err);
	if (!rc)
		rc = name_check(b, err);
	if (rc)
		return rc;
	if (!strcmp(a, b))
		return pv_err_set(err, EINVAL, "`%s` cannot be partitioned from itself: name two nodes", a);
	const char *from = a, *to = b;
	if (!directional && strcmp(a, b) > 0) {
		from = b;
		to = a;
	}
	struct pv_partition *p = part_find(br, from, to, directional);
	if (!add) {
		/* lifting a partition that is not there (e.g. its endpoint was
		 * detached, which lifted it) is a no-op */
		if (p)
			REMOVE_AT(br->parts, br->n_parts, (size_t)(p - br->parts));
		return 0;
	}
	if (directional) {
		if ((rc = endpoint_ready(g, br, a, err)) || (rc = endpoint_ready(g, br, b, err)))
			return rc;
	}
	if (p)
		return 0;
	GROW(br->parts, br->n_parts, br->cap_parts);
	p = &br->parts[br->n_parts++];
	memset(p, 0, sizeof(*p));
	snprintf(p->from, sizeof(p->from), "%s", from);
	snprintf(p->to, sizeof(p->to), "%s", to);
	p->directional = directional;
	return 0;
}

int pv_graph_partition_all(struct pv_graph *g, const char *bridge, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	for (size_t i = 0; i < b->n_members; i++)
		for (size_t j = i + 1; j < b->n_members; j++) {
			struct pv_node *x = pv_graph_node_by_id(g, b->members[i].node_id);
			struct pv_node *y = pv_graph_node_by_id(g, b->members[j].node_id);
			int rc = pv_graph_partition(g, bridge, x->name, y->name, false, true, err);
			if (rc)
				return rc;
			b = pv_graph_bridge(g, bridge); /* parts may have moved, members not */
		}
	return 0;
}

int pv_graph_partition_none(struct pv_graph *g, const char *bridge, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	b->n_parts = 0;
	return 0;
}

static struct pv_member *member_get(const struct pv_graph *g, const char *bridge,
				    const char *node, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return NULL;
	struct pv_node *n = node_get(g, node, err);
	if (!n)
		return NULL;
	struct pv_member *m = pv_bridge_member(b, n->id);
	if (!m)
		pv_err_set(err, ENOENT, "`%s` is not attached to `%s`: write %s to %s/attach first",
			   node, bridge, node, bridge);
	return m;
}

int pv_graph_isolate(struct pv_graph *g, const char *bridge, const char *node, bool on,
		     struct pv_err *err)
{
	struct pv_member *m = member_get(g, bridge, node, err);
	if (!m)
		return -err->code;
	m->isolated = on;
	return 0;
}

int pv_graph_set_link(struct pv_graph *g, const char *node, const char *bridge, bool up,
		      struct pv_err *err)
{
	struct pv_member *m = member_get(g, bridge, node, err);
	if (!m)
		return -err->code;
	m->link_up = up;
	return 0;
}

void pv_bridge_ifname(const struct pv_bridge *b, char out[16])
{
	/* "br-" keeps bridges apart from ports ("p...") whatever the user names them */
	if (strlen(b->name) <= 12)
		snprintf(out, 16, "br-%s", b->name);
	else
		snprintf(out, 16, "br%u", b->id);
}

void pv_port_ifname(unsigned node_id, unsigned bridge_id, char out[16])
{
	snprintf(out, 16, "p%u-%u", node_id, bridge_id);
}

void pv_member_ip(const struct pv_bridge *b, const struct pv_member *m, char *out, size_t len)
{
	snprintf(out, len, "10.77.%u.%u", b->id, m->host);
}

void pv_member_cidr(const struct pv_bridge *b, const struct pv_member *m, char *out, size_t len)
{
	snprintf(out, len, "10.77.%u.%u/24", b->id, m->host);
}

void pv_mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

const char *pv_state_name(enum pv_node_state s)
{
	static const char *const names[] = {"created", "booting", "booted", "shutdown", "dead"};
	return names[s];
}

const char *pv_kind_name(enum pv_node_kind k)
{
	return k == PV_NODE_NETNS ? "netns" : "qemu";
}

/* ---- impairments ---- */

struct pv_pair_impair *pv_bridge_impair_pair(const struct pv_bridge *b, const char *from,
					     const char *to)
{
	for (size_t i = 0; i < b->n_pairs; i++)
		if (!strcmp(b->pairs[i].from, from) && !strcmp(b->pairs[i].to, to))
			return &b->pairs[i];
	return NULL;
}

static int impair_apply(struct pv_impair *im, const struct pv_impair_change *c,
			struct pv_err *err)
{
	for (int k = 0; k < PV_IMP_NKEYS; k++) {
		if (!(c->mask & (1u << k)))
			continue;
		int rc = pv_impair_value_check((enum pv_imp_key)k, c->val.v[k], err);
		if (rc)
			return rc;
		im->v[k] = c->val.v[k];
	}
	return 0;
}

static bool impair_empty(const struct pv_impair *im)
{
	for (int k = 0; k < PV_IMP_NKEYS; k++)
		if (im->v[k])
			return false;
	return true;
}

static bool impair_netem(const struct pv_impair *im)
{
	for (int k = 0; k < PV_IMP_NKEYS; k++)
		if (k != PV_IMP_BANDWIDTH && im->v[k])
			return true;
	return false;
}

/* Frames to `to` leave through its port: one netem for the whole-bridge
 * shape, one per pair to `to` (merged with it). Kernels since 2025 (6.1.y
 * included) refuse a tree with a duplicating netem and any other netem. */
static int duplicate_alone(const struct pv_bridge *b, const char *to, struct pv_err *err)
{
	bool dflt = impair_netem(&b->impair);
	unsigned netems = dflt, dups = dflt && b->impair.v[PV_IMP_DUPLICATE];
	for (size_t i = 0; i < b->n_pairs; i++) {
		const struct pv_pair_impair *p = &b->pairs[i];
		if (strcmp(p->to, to) || !(dflt || impair_netem(&p->im)))
			continue;
		netems++;
		dups += (p->im.v[PV_IMP_DUPLICATE] || b->impair.v[PV_IMP_DUPLICATE]) ? 1 : 0;
	}
	if (dups && netems > 1)
		return pv_err_set(err, EINVAL,
				  "duplicate_pct cannot be combined with other impairments of frames to `%s`: the kernel allows a duplicating netem only alone on a port; clear the pairs to `%s` or duplicate_pct",
				  to, to);
	return 0;
}

/* netem reorders by sending some frames without the delay: with no latency
 * there is nothing to reorder against, and the kernel would refuse it. */
static int impair_consistent(const struct pv_bridge *b, struct pv_err *err)
{
	const uint64_t *w = b->impair.v;
	if (w[PV_IMP_REORDER] && !w[PV_IMP_LATENCY])
		return pv_err_set(err, EINVAL,
				  "reorder_pct on `%s` needs a latency to reorder against: set latency_ms first (or reorder_pct to 0)",
				  b->name);
	for (size_t i = 0; i < b->n_pairs; i++) {
		const uint64_t *v = b->pairs[i].im.v;
		uint64_t ro = v[PV_IMP_REORDER] ? v[PV_IMP_REORDER] : w[PV_IMP_REORDER];
		uint64_t lat = v[PV_IMP_LATENCY] ? v[PV_IMP_LATENCY] : w[PV_IMP_LATENCY];
		if (ro && !lat)
			return pv_err_set(err, EINVAL,
					  "reorder_pct for `%s -> %s` needs a latency to reorder against: set latency_ms on the pair or the bridge first",
					  b->pairs[i].from, b->pairs[i].to);
		int rc = duplicate_alone(b, b->pairs[i].to, err);
		if (rc)
			return rc;
	}
	return 0;
}

int pv_graph_impair_bridge(struct pv_graph *g, const char *bridge,
			   const struct pv_impair_change *c, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	int rc = impair_apply(&b->impair, c, err);
	return rc ? rc : impair_consistent(b, err);
}

/* Lowest minor no pair of the bridge holds: an entry keeps its minor for
 * life, and only a removed entry's minor comes back. */
static int free_minor(const struct pv_bridge *b, uint16_t *out, struct pv_err *err)
{
	for (unsigned m = PV_QDISC_MINOR_MIN; m <= PV_QDISC_MINOR_MAX; m++) {
		bool used = false;
		for (size_t i = 0; i < b->n_pairs && !used; i++)
			used = b->pairs[i].minor == m;
		if (!used) {
			*out = (uint16_t)m;
			return 0;
		}
	}
	return pv_err_set(err, ENOSPC, "bridge `%s` has no free shaping class: clear some pairs first",
			  b->name);
}

int pv_graph_impair_pair(struct pv_graph *g, const char *bridge, const char *from,
			 const char *to, const struct pv_impair_change *c, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	int rc = name_check(from, err);
	if (!rc)
		rc = name_check(to, err);
	if (rc)
		return rc;
	if (!strcmp(from, to))
		return pv_err_set(err, EINVAL,
				  "`%s -> %s` names one node twice: a pair is two different nodes", from,
				  to);
	if ((rc = endpoint_ready(g, b, from, err)) || (rc = endpoint_ready(g, b, to, err)))
		return rc;
	struct pv_pair_impair *p = pv_bridge_impair_pair(b, from, to);
	if (!p) {
		struct pv_pair_impair fresh;
		memset(&fresh, 0, sizeof(fresh));
		if ((rc = free_minor(b, &fresh.minor, err)))
			return rc;
		snprintf(fresh.from, sizeof(fresh.from), "%s", from);
		snprintf(fresh.to, sizeof(fresh.to), "%s", to);
		GROW(b->pairs, b->n_pairs, b->cap_pairs);
		p = &b->pairs[b->n_pairs++];
		*p = fresh;
	}
	if ((rc = impair_apply(&p->im, c, err)))
		return rc;
	if (impair_empty(&p->im)) /* every key back to "inherit": the entry says nothing */
		REMOVE_AT(b->pairs, b->n_pairs, (size_t)(p - b->pairs));
	return impair_consistent(b, err);
}

int pv_graph_impair_clear(struct pv_graph *g, const char *bridge, const char *from,
			  const char *to, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	int rc = name_check(from, err);
	if (!rc)
		rc = name_check(to, err);
	if (rc)
		return rc;
	/* like lifting a partition: clearing what a detach already took is a no-op */
	struct pv_pair_impair *p = pv_bridge_impair_pair(b, from, to);
	if (p)
		REMOVE_AT(b->pairs, b->n_pairs, (size_t)(p - b->pairs));
	return impair_consistent(b, err);
}

int pv_graph_bridge_reset(struct pv_graph *g, const char *bridge, struct pv_err *err)
{
	struct pv_bridge *b = bridge_get(g, bridge, err);
	if (!b)
		return -err->code;
	memset(&b->impair, 0, sizeof(b->impair));
	b->n_pairs = 0;
	b->n_parts = 0;
	return 0;
}
