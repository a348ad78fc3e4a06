/* Links of one network namespace over rtnetlink (libnl-route): bridges, veth
 * ports, addresses, carrier, counters. A pv_links handle is bound to the
 * namespace its creator's thread was in, whichever thread uses it later.
 * Not thread-safe: callers serialize (the lab lock does). */
#ifndef PV_LINKS_H
#define PV_LINKS_H

#include <stdbool.h>
#include <stdint.h>

#include "netcore/err.h"

struct pv_links;
struct nl_sock;

struct pv_link_stats {
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errors, tx_errors;
};

/* What a veth port looks like. The host end stays in the handle's namespace
 * and is enslaved to `master`; the peer is created directly in `peer_nsfd`
 * (never appears in the handle's namespace) with its final name, MAC and
 * address, and is brought up together with the peer namespace's `lo`. */
struct pv_veth_spec {
	const char *host_ifname;  /* <= 15 chars */
	const char *master;       /* bridge ifname */
	bool host_up;             /* false = the peer sees NO-CARRIER */
	int peer_nsfd;
	const char *peer_ifname;  /* e.g. "eth0" */
	uint8_t peer_mac[6];
	const char *peer_cidr;    /* "10.77.1.2/24", or NULL for no address */
};

int pv_links_open(struct pv_links **out, struct pv_err *err);
void pv_links_close(struct pv_links *l);

/* Create bridge `ifname` (STP off, forward delay 0) and bring it up.
 * Succeeds if it already exists. */
int pv_links_bridge_add(struct pv_links *l, const char *ifname, struct pv_err *err);

/* Delete link `ifname`; 0 if it does not exist. */
int pv_links_del(struct pv_links *l, const char *ifname, struct pv_err *err);

int pv_links_veth_add(struct pv_links *l, const struct pv_veth_spec *s, struct pv_err *err);

/* A persistent TAP `ifname` enslaved to `master` and up, for a VM NIC; QEMU
 * attaches to it by name. Deleted with pv_links_del. */
int pv_links_tap_add(struct pv_links *l, const char *ifname, const char *master,
		     struct pv_err *err);

/* Set IFF_UP on/off. */
int pv_links_set_up(struct pv_links *l, const char *ifname, bool up, struct pv_err *err);

/* Add an address ("10.77.1.1/24") to `ifname` in the handle's namespace. */
int pv_links_addr_add(struct pv_links *l, const char *ifname, const char *cidr,
		      struct pv_err *err);

/* Counters of `ifname` as the kernel reports them (host view). -ENOENT if absent. */
int pv_links_stats(struct pv_links *l, const char *ifname, struct pv_link_stats *out);

/* true if `ifname` exists in the handle's namespace. */
bool pv_links_exists(struct pv_links *l, const char *ifname);

/* The handle's libnl route socket (bound to its namespace), for other
 * rtnetlink back-ends (qdiscs). Owned by the handle. */
struct nl_sock *pv_links_sock(struct pv_links *l);

#endif
