/* What this kernel can do for a lab, asked once at start so a lab file that
 * needs a missing piece fails up front with the reason. */
#ifndef PV_FEATURES_H
#define PV_FEATURES_H

#include <stdbool.h>
#include <stddef.h>

struct nl_sock;

struct pv_features {
	bool netem, tbf, htb; /* qdisc kinds */
};

/* Try each qdisc kind as the root qdisc of `scratch_ifname` (in the socket's
 * namespace; e.g. the lab namespace's `lo` or a dummy nobody else shapes):
 * add it, then delete it. The scratch's root must be its default (no qdisc
 * configured) — -EBUSY otherwise. Returns 0 or -errno; a missing kind is not
 * an error, it is `false` in *f. */
int pv_features_probe(struct nl_sock *sk, const char *scratch_ifname, struct pv_features *f);

/* Lines "netem yes|no\ntbf yes|no\nhtb yes|no\n" into buf (NUL-terminated).
 * Returns the length it needed, like snprintf. */
int pv_features_render(const struct pv_features *f, char *buf, size_t len);

#endif
