#include "netcore/features.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>

#define PROBE_HANDLE TC_H_MAKE(0x7ff0u << 16, 0)

static int nle_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case NLE_OBJ_NOTFOUND: return ENOENT;
	case NLE_OPNOTSUPP: return EOPNOTSUPP;
	case NLE_NOMEM: return ENOMEM;
	case NLE_EXIST: return EEXIST;
	case NLE_NODEV: return ENODEV;
	case NLE_PERM: return EPERM;
	case NLE_INVAL: return EINVAL;
	default: return EIO;
	}
}

/* The minimum each kind accepts as a valid configuration. */
static int fill_kind(struct rtnl_qdisc *q, const char *kind)
{
	int rc = rtnl_tc_set_kind(TC_CAST(q), kind);
	if (rc < 0)
		return rc;
	if (!strcmp(kind, "netem"))
		rtnl_netem_set_limit(q, 1000);
	else if (!strcmp(kind, "tbf")) {
		rtnl_qdisc_tbf_set_rate(q, 125000, 10000, 0); /* 1 Mbit/s, 10 kB bucket */
		rtnl_qdisc_tbf_set_limit(q, 10000);
	} else if (!strcmp(kind, "htb"))
		rc = rtnl_htb_set_defcls(q, 0);
	return rc;
}

/* 1 = the kernel took `kind` as the scratch's root, 0 = unknown kind. */
static int try_kind(struct nl_sock *sk, int ifindex, const char *kind)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return -ENOMEM;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
	rtnl_tc_set_handle(TC_CAST(q), PROBE_HANDLE);
	int rc = fill_kind(q, kind);
	if (rc == 0)
		rc = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_EXCL);
	if (rc == 0) {
		rtnl_qdisc_delete(sk, q);
		rc = 1;
	} else if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_OPNOTSUPP) {
		rc = 0; /* "Specified qdisc kind is unknown" is ENOENT */
	} else {
		rc = -nle_errno(rc);
	}
	rtnl_qdisc_put(q);
	return rc;
}

int pv_features_probe(struct nl_sock *sk, const char *scratch_ifname, struct pv_features *f)
{
	static const char *kinds[] = {"netem", "tbf", "htb"};
	bool *out[] = {&f->netem, &f->tbf, &f->htb};
	struct rtnl_link *l = NULL;
	memset(f, 0, sizeof(*f));
	if (rtnl_link_get_kernel(sk, 0, scratch_ifname, &l) < 0)
		return -ENODEV;
	int ifindex = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int rc = try_kind(sk, ifindex, kinds[i]);
		if (rc == -EEXIST) /* the scratch has a root of its own: not ours to touch */
			return -EBUSY;
		if (rc < 0)
			return rc;
		*out[i] = rc == 1;
	}
	return 0;
}

int pv_features_render(const struct pv_features *f, char *buf, size_t len)
{
	return snprintf(buf, len, "netem %s\ntbf %s\nhtb %s\n", f->netem ? "yes" : "no",
			f->tbf ? "yes" : "no", f->htb ? "yes" : "no");
}
