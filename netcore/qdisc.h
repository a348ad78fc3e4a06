/* Impairments of one bridge port: the whole egress qdisc tree of the port
 * (host end of a node's veth/TAP), brought to a declared spec in one call.
 *
 * Tree (see docs/impairments.md for why):
 *
 *   root htb 1: default 1:fffe
 *     class 1:fffe   whole-bridge shape (frames of no pair)  [netem fffe: below]
 *     class 1:MINOR  one per pair, selected by skb->priority == 1:MINOR
 *                    (the lab's nftables map sets it)        [netem MINOR: below]
 *
 * A pair class's shape is the whole-bridge shape with every non-zero field of
 * the pair's own shape overriding it (zero = inherit). So each frame is shaped
 * exactly once: by its pair class, or by the default class. */
#ifndef PV_QDISC_H
#define PV_QDISC_H

#include <stddef.h>
#include <stdint.h>

#include "netcore/err.h"

struct nl_sock;

/* Handle major of the root qdisc: skb->priority of a pair is
 * PV_QDISC_CLASSID(minor). */
#define PV_QDISC_MAJOR 0x0001u
#define PV_QDISC_CLASSID(minor) ((PV_QDISC_MAJOR << 16) | (uint32_t)(minor))
/* Pair classes use minors PV_QDISC_MINOR_MIN..PV_QDISC_MINOR_MAX; the default
 * (whole-bridge) class is 1:fffe. Minor 1 is excluded because a class's netem
 * child takes the handle MINOR:, and 1: is the root. */
#define PV_QDISC_MINOR_MIN 0x0002u
#define PV_QDISC_MINOR_MAX 0xfffdu
#define PV_QDISC_DFLT_MINOR 0xfffeu
/* Rate of a class without a cap: HTB needs one. */
#define PV_QDISC_UNLIMITED_BPS 100000000000ull

/* All zero = no netem. Probabilities in parts per million (1000000 = 100%). */
struct pv_netem {
	uint32_t latency_us, jitter_us;
	uint32_t loss_ppm, loss_corr_ppm;
	uint32_t duplicate_ppm, corrupt_ppm, reorder_ppm; /* reorder needs latency */
};

struct pv_shape {
	uint64_t rate_bps; /* bits per second, 0 = unlimited */
	struct pv_netem netem;
};

struct pv_qdisc_class {
	uint16_t minor; /* class 1:minor; skb->priority = PV_QDISC_CLASSID(minor) */
	struct pv_shape shape; /* zero fields inherit the port's dflt */
};

struct pv_port_qdisc {
	struct pv_shape dflt; /* whole-bridge: every frame of no pair class */
	size_t n_classes;
	const struct pv_qdisc_class *classes; /* per pair; caller owns */
};

/* Bring the egress tree of `ifname` (in the socket's namespace) to `want`.
 * An empty spec (all zero, no classes) removes the root qdisc. Changes are
 * made in place where the tree already is ours (root htb 1:): a latency change
 * is one netem change message, and loss, queue and counters stay. Classes no
 * longer wanted are deleted, new ones added; a foreign root is replaced.
 * Errors: -EINVAL (bad spec), -ENODEV (no such link), -EOPNOTSUPP (the kernel
 * lacks sch_netem/sch_htb; the port is then left exactly as it was), or the
 * kernel's errno. */
int pv_qdisc_apply(struct nl_sock *sk, const char *ifname, const struct pv_port_qdisc *want,
		   struct pv_err *err);

/* Delete the root qdisc of `ifname` (and so the whole tree); 0 if none. */
int pv_qdisc_clear(struct nl_sock *sk, const char *ifname, struct pv_err *err);

/* The shape a pair class really gets: `cls` fields override `dflt`'s. */
struct pv_shape pv_qdisc_merge(const struct pv_shape *dflt, const struct pv_shape *cls);

/* Whether the kernel knows qdisc `kind` ("netem"), asked on `ifname` without
 * changing it: a create request with no options fails with ENOENT for an
 * unknown kind and EINVAL for a known one. 1 = yes, 0 = no, <0 = -errno. */
int pv_qdisc_kind_known(struct nl_sock *sk, const char *ifname, const char *kind);

#endif
