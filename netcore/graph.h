/* The lab graph: the desired state of one lab. Plain values in growable
 * arrays, so a change can be tried on a clone and thrown away if the kernel
 * refuses it (DESIGN.md principle 1). Nothing here touches the kernel. */
#ifndef PV_GRAPH_H
#define PV_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netcore/err.h"

#define PV_NAME_MAX 32
#define PV_HOST_MIN 2   /* .1 is the bridge's own (gateway) address */
#define PV_HOST_MAX 254

typedef char pv_name[PV_NAME_MAX + 1];

enum pv_node_kind { PV_NODE_NETNS, PV_NODE_QEMU };
enum pv_node_state {
	PV_STATE_CREATED,
	PV_STATE_BOOTING,
	PV_STATE_BOOTED,
	PV_STATE_SHUTDOWN,
	PV_STATE_DEAD,
};

struct pv_node {
	pv_name name;
	unsigned id; /* never reused in a lab: port names stay unique */
	enum pv_node_kind kind;
	enum pv_node_state state;
	pv_name profile;
	unsigned memory_mb, cpus;
};

/* One NIC: node `node_id` on a bridge. */
struct pv_member {
	unsigned node_id;
	unsigned host;  /* address 10.77.<bridge id>.<host> */
	uint8_t mac[6];
	int nic_index;  /* guest eth<N>; -1 until the node is up */
	bool link_up;
	bool isolated;
};

/* Symmetric partitions are kept with from < to (by name) and may name nodes
 * that do not exist yet; directional ones need both ends attached and up. */
struct pv_partition {
	pv_name from, to;
	bool directional;
};

/* Impairments (docs/impairments.md). One value per key: milliseconds,
 * parts per million (1000000 = 100%) or bits per second. On the whole bridge
 * 0 is off; on a pair 0 inherits the whole-bridge value. */
enum pv_imp_key {
	PV_IMP_LATENCY,   /* latency_ms */
	PV_IMP_JITTER,    /* jitter_ms */
	PV_IMP_DROP,      /* drop_pct */
	PV_IMP_DROP_CORR, /* drop_corr_pct: loss correlation */
	PV_IMP_DUPLICATE, /* duplicate_pct */
	PV_IMP_CORRUPT,   /* corrupt_pct */
	PV_IMP_REORDER,   /* reorder_pct (needs latency) */
	PV_IMP_BANDWIDTH, /* bandwidth_bps */
	PV_IMP_NKEYS,
};

struct pv_impair {
	uint64_t v[PV_IMP_NKEYS];
};

/* A write: the keys in `mask` (bit = 1 << key) take their value in `val`. */
struct pv_impair_change {
	uint32_t mask;
	struct pv_impair val;
};

/* A per-pair entry `from -> to`: frames from `from` to `to`. `minor` is its
 * HTB class on to's port, stable while the entry exists. */
struct pv_pair_impair {
	pv_name from, to;
	uint16_t minor;
	struct pv_impair im;
};

struct pv_bridge {
	pv_name name;
	unsigned id; /* 1..255: the bridge's subnet */
	struct pv_member *members;
	size_t n_members, cap_members;
	struct pv_partition *parts;
	size_t n_parts, cap_parts;
	struct pv_impair impair; /* whole bridge */
	struct pv_pair_impair *pairs;
	size_t n_pairs, cap_pairs;
};

struct pv_graph {
	struct pv_node *nodes;
	size_t n_nodes, cap_nodes;
	struct pv_bridge *bridges;
	size_t n_bridges, cap_bridges;
	unsigned next_node_id;
	uint32_t mac_prefix; /* low 16 bits of the daemon pid: the first bytes of its MACs */
};

struct pv_graph *pv_graph_new(uint32_t mac_prefix);
struct pv_graph *pv_graph_clone(const struct pv_graph *g);
void pv_graph_free(struct pv_graph *g);

bool pv_name_valid(const char *name);

struct pv_node *pv_graph_node(const struct pv_graph *g, const char *name);
struct pv_node *pv_graph_node_by_id(const struct pv_graph *g, unsigned id);
struct pv_bridge *pv_graph_bridge(const struct pv_graph *g, const char *name);
struct pv_member *pv_bridge_member(const struct pv_bridge *b, unsigned node_id);

/* Node and bridge names share one namespace per lab. */
int pv_graph_add_bridge(struct pv_graph *g, const char *name, struct pv_err *err);
int pv_graph_del_bridge(struct pv_graph *g, const char *name, struct pv_err *err);
int pv_graph_add_node(struct pv_graph *g, const char *name, enum pv_node_kind kind,
		      struct pv_err *err);
/* Removes the node from every bridge first. */
int pv_graph_del_node(struct pv_graph *g, const char *name, struct pv_err *err);

/* Attach/detach every name in `names`, validated whole before any is applied. */
int pv_graph_attach(struct pv_graph *g, const char *bridge, char **names, size_t n,
		    struct pv_err *err);
int pv_graph_detach(struct pv_graph *g, const char *bridge, char **names, size_t n,
		    struct pv_err *err);

/* A node is "up" when its ports exist: a booted netns node, a booting or
 * booted VM. */
bool pv_node_up(const struct pv_node *n);
/* Move a node to `state`; assigns guest NIC indexes when it comes up (in
 * bridge-name order) and clears them when it goes down. */
void pv_graph_set_state(struct pv_graph *g, struct pv_node *n, enum pv_node_state state);

/* Partitions. `a`/`b` by name. */
int pv_graph_partition(struct pv_graph *g, const char *bridge, const char *a, const char *b,
		       bool directional, bool add, struct pv_err *err);
int pv_graph_partition_all(struct pv_graph *g, const char *bridge, struct pv_err *err);
int pv_graph_partition_none(struct pv_graph *g, const char *bridge, struct pv_err *err);
bool pv_bridge_partitioned(const struct pv_bridge *b, const char *from, const char *to);

/* Impairments. Whole bridge: the keys of `c` change, the others stay. A
 * pair entry needs both ends attached and up; its keys in `c` change (0
 * removes a key; an entry with no key left is removed). Both check that
 * reordering has a latency to act on, for the bridge and every pair. */
int pv_graph_impair_bridge(struct pv_graph *g, const char *bridge,
			   const struct pv_impair_change *c, struct pv_err *err);
int pv_graph_impair_pair(struct pv_graph *g, const char *bridge, const char *from,
			 const char *to, const struct pv_impair_change *c, struct pv_err *err);
/* Remove the entry from -> to; a no-op if there is none. */
int pv_graph_impair_clear(struct pv_graph *g, const char *bridge, const char *from,
			  const char *to, struct pv_err *err);
/* Clear every impairment and every partition of the bridge. */
int pv_graph_bridge_reset(struct pv_graph *g, const char *bridge, struct pv_err *err);
struct pv_pair_impair *pv_bridge_impair_pair(const struct pv_bridge *b, const char *from,
					     const char *to);

int pv_graph_isolate(struct pv_graph *g, const char *bridge, const char *node, bool on,
		     struct pv_err *err);
int pv_graph_set_link(struct pv_graph *g, const char *node, const char *bridge, bool up,
		      struct pv_err *err);

/* Names of the kernel objects the graph implies. */
void pv_bridge_ifname(const struct pv_bridge *b, char out[16]);
void pv_port_ifname(unsigned node_id, unsigned bridge_id, char out[16]);
void pv_member_cidr(const struct pv_bridge *b, const struct pv_member *m, char *out, size_t len);
void pv_member_ip(const struct pv_bridge *b, const struct pv_member *m, char *out, size_t len);
void pv_mac_format(const uint8_t mac[6], char out[18]);

const char *pv_state_name(enum pv_node_state s);
const char *pv_kind_name(enum pv_node_kind k);

#endif
