/* The reconciler: computes the kernel objects a graph implies and applies
 * only the difference from what it applied last (DESIGN.md principle 1).
 * Reset, teardown and recovery are a reconcile against an empty graph. */
#ifndef PV_RECONCILE_H
#define PV_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "netcore/err.h"
#include "netcore/graph.h"
#include "netcore/links.h"
#include "netcore/nft.h"
#include "netcore/qdisc.h"

struct pv_port_rec {
	char ifname[16], master[16];
	bool tap;            /* a VM's TAP (else a netns node's veth) */
	unsigned bridge_id;
	pv_name node;        /* node name (the node may be gone from the graph) */
	char peer_ifname[16];
	uint8_t mac[6];
	char cidr[24];
	bool up;
};

/* The egress qdisc spec of one port (pv_qdisc_apply's input, owned). */
struct pv_qdisc_rec {
	char ifname[16];
	struct pv_shape dflt;          /* whole-bridge shape */
	struct pv_qdisc_class *classes; /* one per pair whose `to` is this port */
	size_t n_classes;
	bool unknown;                  /* an apply failed: the kernel may hold anything */
};

struct pv_hosts_rec {
	pv_name node;
	char *text;
};

/* What the reconciler has applied to the kernel: the model it diffs against. */
struct pv_applied {
	char (*bridges)[16];
	size_t n_bridges;
	struct pv_port_rec *ports;
	size_t n_ports;
	pv_name *netns_nodes; /* node names whose namespace exists */
	size_t n_netns;
	struct pv_hosts_rec *hosts;
	size_t n_hosts;
	struct pv_qdisc_rec *qdiscs; /* ports with a non-empty tree (or unknown) */
	size_t n_qdiscs;
};

/* The kernel objects a graph implies: the reconciler's plan. */
struct pv_plan {
	char (*bridges)[16];
	size_t n_bridges;
	struct pv_port_rec *ports; /* netns nodes' veth ports */
	size_t n_ports;
	pv_name *netns_nodes;      /* netns nodes whose namespace must exist */
	size_t n_netns;
	struct pv_nft_pair *drop, *oneway;
	size_t n_drop, n_oneway;
	char (*isolated)[16];
	size_t n_isolated;
	struct pv_qdisc_rec *qdiscs; /* one per port in `ports`, same order */
	size_t n_qdiscs;
	struct pv_nft_prio *prio;    /* per-pair class of (from's port, to's port) */
	size_t n_prio;
};

void pv_plan_compute(const struct pv_graph *g, struct pv_plan *plan);
void pv_plan_free(struct pv_plan *plan);

/* How the reconciler reaches running VMs: QMP hot-plug and link state. A
 * TAP exists whether or not its VM runs; these say what QEMU should do. */
struct pv_vm_hooks {
	void *ctx;
	/* Port `p` of VM p->node was made: hot-plug it if the VM runs. */
	int (*nic_plug)(void *ctx, const struct pv_port_rec *p, struct pv_err *err);
	/* Port `p` is about to go: unplug it if the VM runs. */
	void (*nic_unplug)(void *ctx, const struct pv_port_rec *p);
	/* Carrier of port `p` as the guest sees it. */
	int (*set_link)(void *ctx, const struct pv_port_rec *p, struct pv_err *err);
};

struct pv_kernel {
	const struct pv_vm_hooks *vm;
	const char *lab;       /* lab name */
	const char *node_dir;  /* where per-node files (hosts) live */
	struct pv_links *links;
	struct pv_nft *nft;
	struct pv_applied ap;
};

/* Bring the kernel to `g`. On failure the kernel may be partly changed but
 * k->ap says exactly what is there, so reconciling the previous graph
 * restores it. */
int pv_reconcile(struct pv_kernel *k, const struct pv_graph *g, struct pv_err *err);

void pv_applied_free(struct pv_applied *ap);

/* Names derived from the lab: "pv-<lab>" and "pv-<lab>.<node>". */
void pv_lab_netns_name(const char *lab, char *out, size_t len);
void pv_node_netns_name(const char *lab, const char *node, char *out, size_t len);
/* "<node_dir>/<node>.hosts" */
void pv_node_hosts_path(const char *node_dir, const char *node, char *out, size_t len);

/* The /etc/hosts text of node `n`: itself, and <member>.<bridge> for every
 * member of every bridge it is on. Caller frees. */
char *pv_hosts_render(const struct pv_graph *g, const struct pv_node *n);

#endif
