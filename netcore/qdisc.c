/* One port's egress qdisc tree through libnl-route (see qdisc.h and
 * docs/impairments.md). The kernel is the record of what is applied: every
 * apply reads the port's qdiscs and classes, then sends only the messages
 * that move it to the spec. */
#include "netcore/qdisc.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/class.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/tc.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define ROOT_HANDLE TC_H_MAKE(PV_QDISC_MAJOR << 16, 0)
#define NETEM_LIMIT_MIN 10000u   /* packets: 1 s of delay at ~100 Mbit/s */
#define NETEM_LIMIT_MAX 1000000u
#define MTU_BYTES 1514u

/* ---- netlink plumbing: one request, its ack, the kernel's errno and text */

struct ack_ctx {
	int err;        /* -errno from the kernel, 0 = acked */
	bool done;
	char text[160]; /* extended ack message, if any */
};

static int nle_to_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case 0: return 0;
	case NLE_NOMEM: return ENOMEM;
	case NLE_EXIST: return EEXIST;
	case NLE_OBJ_NOTFOUND: return ENOENT;
	case NLE_NODEV: return ENODEV;
	case NLE_PERM: return EPERM;
	case NLE_BUSY: return EBUSY;
	case NLE_OPNOTSUPP: return EOPNOTSUPP;
	case NLE_AGAIN: return EAGAIN;
	case NLE_RANGE: return ERANGE;
	case NLE_MSGSIZE: return EMSGSIZE;
	case NLE_INVAL:
	case NLE_MISSING_ATTR: return EINVAL;
	default: return EIO;
	}
}

static void ext_ack_text(struct nlmsgerr *e, struct ack_ctx *c)
{
	struct nlmsghdr *h = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	char *attrs = (char *)&e->msg +
		      ((h->nlmsg_flags & NLM_F_CAPPED) ? sizeof(e->msg) : NLMSG_ALIGN(e->msg.nlmsg_len));
	int len = (int)h->nlmsg_len - (int)(attrs - (char *)h);
	if (len <= 0)
		return;
	struct nlattr *m = nla_find((struct nlattr *)attrs, len, NLMSGERR_ATTR_MSG);
	if (m)
		nla_strlcpy(c->text, m, sizeof(c->text));
}

static int on_err(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	(void)nla;
	struct ack_ctx *c = arg;
	c->err = e->error;
	c->done = true;
	if (e->error)
		ext_ack_text(e, c);
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	(void)msg;
	((struct ack_ctx *)arg)->done = true;
	return NL_STOP;
}

/* Send `msg` (consumed) and wait for its ack. Returns 0 or -errno. */
static int talk(struct nl_sock *sk, struct nl_msg *msg, struct ack_ctx *c)
{
	int one = 1;
	memset(c, 0, sizeof(*c));
	/* the kernel's own words ("Specified qdisc kind is unknown") make
	 * better messages than an errno */
	setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	int rc = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	if (rc < 0)
		return -nle_to_errno(rc);
	struct nl_cb *own = nl_socket_get_cb(sk); /* a reference: put below */
	struct nl_cb *cb = nl_cb_clone(own);
	nl_cb_put(own);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, c);
	nl_cb_err(cb, NL_CB_CUSTOM, on_err, c);
	while (!c->done && rc >= 0)
		rc = nl_recvmsgs(sk, cb);
	nl_cb_put(cb);
	if (c->done)
		return c->err;
	return -nle_to_errno(rc);
}

/* ---- reading the port */

struct port_state {
	int ifindex;
	uint32_t root_handle; /* 0 = no root of ours or anybody's */
	char root_kind[16];
	uint16_t *cls;        /* minors of classes 1:x */
	size_t n_cls;
	uint16_t *netem;      /* minors whose child is netem MINOR: */
	size_t n_netem;
};

static void state_free(struct port_state *s)
{
	free(s->cls);
	free(s->netem);
}

static bool has_minor(const uint16_t *v, size_t n, uint16_t m)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == m)
			return true;
	return false;
}

static int push_minor(uint16_t **v, size_t *n, uint16_t m)
{
	uint16_t *p = realloc(*v, (*n + 1) * sizeof(**v));
	if (!p)
		return -ENOMEM;
	p[(*n)++] = m;
	*v = p;
	return 0;
}

static int link_index(struct nl_sock *sk, const char *ifname, struct pv_err *err)
{
	struct rtnl_link *l = NULL;
	int rc = rtnl_link_get_kernel(sk, 0, ifname, &l);
	if (rc < 0)
		return pv_err_set(err, ENODEV, "qdisc: no link '%s' in the lab namespace: create the port first",
				  ifname);
	int idx = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	return idx;
}

struct walk {
	struct port_state *s;
	int rc;
};

static void see_qdisc(struct nl_object *o, void *arg)
{
	struct walk *w = arg;
	struct rtnl_tc *tc = (struct rtnl_tc *)o;
	if (rtnl_tc_get_ifindex(tc) != w->s->ifindex)
		return;
	uint32_t parent = rtnl_tc_get_parent(tc), handle = rtnl_tc_get_handle(tc);
	const char *kind = rtnl_tc_get_kind(tc);
	if (parent == TC_H_ROOT) {
		w->s->root_handle = handle;
		snprintf(w->s->root_kind, sizeof(w->s->root_kind), "%s", kind ? kind : "");
	} else if (kind && !strcmp(kind, "netem") && TC_H_MAJ(parent) == ROOT_HANDLE &&
		   handle == TC_H_MAKE((uint32_t)TC_H_MIN(parent) << 16, 0) && w->rc == 0) {
		w->rc = push_minor(&w->s->netem, &w->s->n_netem, (uint16_t)TC_H_MIN(parent));
	}
}

static void see_class(struct nl_object *o, void *arg)
{
	struct walk *w = arg;
	uint32_t h = rtnl_tc_get_handle((struct rtnl_tc *)o);
	if (TC_H_MAJ(h) == ROOT_HANDLE && TC_H_MIN(h) && w->rc == 0)
		w->rc = push_minor(&w->s->cls, &w->s->n_cls, (uint16_t)TC_H_MIN(h));
}

static int read_port(struct nl_sock *sk, int ifindex, struct port_state *s)
{
	struct nl_cache *qc = NULL, *cc = NULL;
	struct walk w = {s, 0};
	memset(s, 0, sizeof(*s));
	s->ifindex = ifindex;
	int rc = rtnl_qdisc_alloc_cache(sk, &qc);
	if (rc < 0)
		return -nle_to_errno(rc);
	nl_cache_foreach(qc, see_qdisc, &w);
	nl_cache_free(qc);
	/* classes only matter under our own root */
	if (w.rc == 0 && s->root_handle == ROOT_HANDLE && !strcmp(s->root_kind, "htb")) {
		rc = rtnl_class_alloc_cache(sk, ifindex, &cc);
		if (rc < 0)
			return -nle_to_errno(rc);
		nl_cache_foreach(cc, see_class, &w);
		nl_cache_free(cc);
	}
	return w.rc;
}

/* ---- the spec */

struct pv_shape pv_qdisc_merge(const struct pv_shape *d, const struct pv_shape *c)
{
	struct pv_shape m;
#define PICK(f) m.f = c->f ? c->f : d->f
	PICK(rate_bps);
	PICK(netem.latency_us);
	PICK(netem.jitter_us);
	PICK(netem.loss_ppm);
	PICK(netem.loss_corr_ppm);
	PICK(netem.duplicate_ppm);
	PICK(netem.corrupt_ppm);
	PICK(netem.reorder_ppm);
#undef PICK
	return m;
}

static bool netem_zero(const struct pv_netem *n)
{
	static const struct pv_netem z;
	return !memcmp(n, &z, sizeof(z));
}

static bool spec_empty(const struct pv_port_qdisc *w)
{
	return w->n_classes == 0 && w->dflt.rate_bps == 0 && netem_zero(&w->dflt.netem);
}

static int check_shape(const char *ifname, unsigned minor, const struct pv_shape *s, struct pv_err *err)
{
	const struct pv_netem *n = &s->netem;
	if (n->loss_ppm > 1000000 || n->loss_corr_ppm > 1000000 || n->duplicate_ppm > 1000000 ||
	    n->corrupt_ppm > 1000000 || n->reorder_ppm > 1000000)
		return pv_err_set(err, EINVAL, "qdisc %s class %x: a probability is above 1000000 ppm (100%%)",
				  ifname, minor);
	if (n->reorder_ppm && !n->latency_us)
		return pv_err_set(err, EINVAL, "qdisc %s class %x: reorder needs a latency to reorder against",
				  ifname, minor);
	/* netem keeps delay in 64 ns ticks in a u32: about 274 s */
	if ((uint64_t)n->latency_us + n->jitter_us > 270000000ull)
		return pv_err_set(err, EINVAL, "qdisc %s class %x: latency + jitter above 270 s", ifname, minor);
	if (s->rate_bps && s->rate_bps < 8000)
		return pv_err_set(err, EINVAL, "qdisc %s class %x: rate below 8000 bit/s", ifname, minor);
	return 0;
}

static int check_spec(const char *ifname, const struct pv_port_qdisc *w, struct pv_err *err)
{
	int rc = check_shape(ifname, PV_QDISC_DFLT_MINOR, &w->dflt, err);
	for (size_t i = 0; rc == 0 && i < w->n_classes; i++) {
		const struct pv_qdisc_class *c = &w->classes[i];
		if (c->minor < PV_QDISC_MINOR_MIN || c->minor > PV_QDISC_MINOR_MAX)
			return pv_err_set(err, EINVAL, "qdisc %s: class minor %#x outside %#x..%#x", ifname,
					  c->minor, PV_QDISC_MINOR_MIN, PV_QDISC_MINOR_MAX);
		for (size_t j = 0; j < i; j++)
			if (w->classes[j].minor == c->minor)
				return pv_err_set(err, EINVAL, "qdisc %s: class minor %#x given twice", ifname,
						  c->minor);
		struct pv_shape m = pv_qdisc_merge(&w->dflt, &c->shape);
		rc = check_shape(ifname, c->minor, &m, err);
	}
	return rc;
}

/* ---- building messages */

static uint32_t ppm_to_prob(uint32_t ppm)
{
	return (uint32_t)(((uint64_t)ppm * UINT32_MAX) / 1000000u);
}

static uint32_t netem_limit(const struct pv_shape *s)
{
	/* enough packets to hold (latency + jitter) of traffic at the class
	 * rate (capped at what a veth carries), in 1000-byte packets */
	uint64_t rate = s->rate_bps ? s->rate_bps : 10000000000ull;
	uint64_t us = (uint64_t)s->netem.latency_us + s->netem.jitter_us;
	uint64_t pkts = rate / 8 / 1000 * us / 1000000 * 2;
	if (pkts < NETEM_LIMIT_MIN)
		return NETEM_LIMIT_MIN;
	return pkts > NETEM_LIMIT_MAX ? NETEM_LIMIT_MAX : (uint32_t)pkts;
}

static void tc_place(struct rtnl_tc *tc, int ifindex, uint32_t parent, uint32_t handle)
{
	rtnl_tc_set_ifindex(tc, ifindex);
	rtnl_tc_set_parent(tc, parent);
	rtnl_tc_set_handle(tc, handle);
}

/* libnl sends the correlation, reorder and corruption attributes only when
 * non-zero, and the kernel keeps the old value of an attribute it is not
 * sent: so turning corruption off would silently keep it on. Append them
 * always; the kernel reads the last copy of an attribute. netem wants
 * TCA_OPTIONS to span the rest of the message (libnl does the same). */
static int netem_force_attrs(struct nl_msg *msg, const struct pv_netem *n)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *opts = nlmsg_find_attr(h, sizeof(struct tcmsg), TCA_OPTIONS);
	if (!opts)
		return -EIO;
	/* with reordering, libnl 3.7 leaves zeroed room after TCA_OPTIONS:
	 * trim it, so what is appended below lands inside the options */
	char *end = (char *)opts + NLA_ALIGN(opts->nla_len);
	for (char *p = end; p < (char *)nlmsg_tail(h); p++)
		if (*p)
			return -EIO;
	h->nlmsg_len = (uint32_t)(end - (char *)h);
	struct tc_netem_corr corr = {0, ppm_to_prob(n->loss_corr_ppm), 0};
	struct tc_netem_corrupt crpt = {ppm_to_prob(n->corrupt_ppm), 0};
	struct tc_netem_reorder ro = {0, 0};
	if (nla_put(msg, TCA_NETEM_CORR, sizeof(corr), &corr) < 0 ||
	    nla_put(msg, TCA_NETEM_CORRUPT, sizeof(crpt), &crpt) < 0 ||
	    (!n->reorder_ppm && nla_put(msg, TCA_NETEM_REORDER, sizeof(ro), &ro) < 0))
		return -EMSGSIZE;
	opts->nla_len = (uint16_t)((char *)nlmsg_tail(h) - (char *)opts);
	return 0;
}

static int netem_msg(int ifindex, uint16_t minor, const struct pv_shape *s, struct nl_msg **out)
{
	const struct pv_netem *n = &s->netem;
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return -ENOMEM;
	tc_place(TC_CAST(q), ifindex, PV_QDISC_CLASSID(minor), TC_H_MAKE((uint32_t)minor << 16, 0));
	int rc = rtnl_tc_set_kind(TC_CAST(q), "netem");
	if (rc == 0) {
		rtnl_netem_set_limit(q, (int)netem_limit(s));
		rtnl_netem_set_delay(q, (int)n->latency_us);
		rtnl_netem_set_jitter(q, (int)n->jitter_us);
		rtnl_netem_set_loss(q, (int)ppm_to_prob(n->loss_ppm));
		rtnl_netem_set_duplicate(q, (int)ppm_to_prob(n->duplicate_ppm));
		if (n->reorder_ppm)
			rtnl_netem_set_reorder_probability(q, (int)ppm_to_prob(n->reorder_ppm));
		/* create, or change in place if netem MINOR: is already there */
		rc = rtnl_qdisc_build_add_request(q, NLM_F_CREATE | NLM_F_REPLACE, out);
	}
	rtnl_qdisc_put(q);
	if (rc < 0)
		return -nle_to_errno(rc);
	rc = netem_force_attrs(*out, n);
	if (rc < 0)
		nlmsg_free(*out);
	return rc;
}

static int class_msg(int ifindex, uint16_t minor, const struct pv_shape *s, struct nl_msg **out)
{
	uint64_t bps = s->rate_bps ? s->rate_bps : PV_QDISC_UNLIMITED_BPS;
	uint64_t Bps = bps / 8;
	/* 1 ms worth of bytes (plus a frame) keeps the rate exact over
	 * timer slack without letting long bursts through */
	uint64_t burst = Bps / 1000 + 2 * MTU_BYTES;
	uint64_t quantum = Bps / 10;
	if (burst > UINT32_MAX / 2)
		burst = UINT32_MAX / 2;
	/* an explicit quantum in HTB's accepted range: no kernel warning */
	quantum = quantum < MTU_BYTES ? MTU_BYTES : quantum > 200000 ? 200000 : quantum;
	struct rtnl_class *c = rtnl_class_alloc();
	if (!c)
		return -ENOMEM;
	tc_place(TC_CAST(c), ifindex, ROOT_HANDLE, PV_QDISC_CLASSID(minor));
	int rc = rtnl_tc_set_kind(TC_CAST(c), "htb");
	if (rc == 0)
		rc = rtnl_htb_set_rate64(c, Bps);
	if (rc == 0)
		rc = rtnl_htb_set_ceil64(c, Bps);
	if (rc == 0)
		rc = rtnl_htb_set_rbuffer(c, (uint32_t)burst);
	if (rc == 0)
		rc = rtnl_htb_set_cbuffer(c, (uint32_t)burst);
	if (rc == 0)
		rc = rtnl_htb_set_quantum(c, (uint32_t)quantum);
	if (rc == 0) /* NLM_F_CREATE without EXCL: add or change in place */
		rc = rtnl_class_build_add_request(c, NLM_F_CREATE, out);
	rtnl_class_put(c);
	return rc < 0 ? -nle_to_errno(rc) : 0;
}

static int root_msg(int ifindex, struct nl_msg **out)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return -ENOMEM;
	tc_place(TC_CAST(q), ifindex, TC_H_ROOT, ROOT_HANDLE);
	int rc = rtnl_tc_set_kind(TC_CAST(q), "htb");
	if (rc == 0)
		rc = rtnl_htb_set_defcls(q, PV_QDISC_CLASSID(PV_QDISC_DFLT_MINOR));
	if (rc == 0) /* replaces a foreign root in one step: no moment unqueued */
		rc = rtnl_qdisc_build_add_request(q, NLM_F_CREATE | NLM_F_REPLACE, out);
	rtnl_qdisc_put(q);
	return rc < 0 ? -nle_to_errno(rc) : 0;
}

static int qdisc_del_msg(int ifindex, uint32_t parent, uint32_t handle, struct nl_msg **out)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return -ENOMEM;
	tc_place(TC_CAST(q), ifindex, parent, handle);
	int rc = rtnl_qdisc_build_delete_request(q, out);
	rtnl_qdisc_put(q);
	return rc < 0 ? -nle_to_errno(rc) : 0;
}

static int class_del_msg(int ifindex, uint16_t minor, struct nl_msg **out)
{
	struct rtnl_class *c = rtnl_class_alloc();
	if (!c)
		return -ENOMEM;
	tc_place(TC_CAST(c), ifindex, ROOT_HANDLE, PV_QDISC_CLASSID(minor));
	int rc = rtnl_class_build_delete_request(c, out);
	rtnl_class_put(c);
	return rc < 0 ? -nle_to_errno(rc) : 0;
}

/* ---- applying */

struct run {
	struct nl_sock *sk;
	const char *ifname;
	struct port_state *s;
	struct pv_err *err;
};

/* Send the message a builder left in *msg (the builder's call is an argument,
 * so *msg is read only after it ran); on failure fill err naming `what`. */
static int send_step(struct run *r, int built, struct nl_msg **msg, const char *what, unsigned minor)
{
	struct ack_ctx c;
	if (built < 0)
		return pv_err_set(r->err, -built, "qdisc %s: cannot build %s for class %x: %s", r->ifname,
				  what, minor, strerror(-built));
	int rc = talk(r->sk, *msg, &c);
	if (rc < 0)
		return pv_err_set(r->err, -rc, "qdisc %s: kernel refused %s for class %x: %s%s%s", r->ifname,
				  what, minor, strerror(-rc), c.text[0] ? ": " : "", c.text);
	return 0;
}

static int apply_class(struct run *r, uint16_t minor, const struct pv_shape *s)
{
	struct nl_msg *m = NULL;
	int rc = send_step(r, class_msg(r->s->ifindex, minor, s, &m), &m, "htb class", minor);
	if (rc < 0)
		return rc;
	if (!netem_zero(&s->netem)) {
		m = NULL;
		return send_step(r, netem_msg(r->s->ifindex, minor, s, &m), &m, "netem", minor);
	}
	if (has_minor(r->s->netem, r->s->n_netem, minor)) {
		/* HTB puts its default pfifo back under the class */
		m = NULL;
		return send_step(r,
				 qdisc_del_msg(r->s->ifindex, PV_QDISC_CLASSID(minor),
					       TC_H_MAKE((uint32_t)minor << 16, 0), &m),
				 &m, "netem delete", minor);
	}
	return 0;
}

static bool wanted(const struct pv_port_qdisc *w, uint16_t minor)
{
	if (minor == PV_QDISC_DFLT_MINOR)
		return true;
	for (size_t i = 0; i < w->n_classes; i++)
		if (w->classes[i].minor == minor)
			return true;
	return false;
}

static int apply_tree(struct run *r, const struct pv_port_qdisc *w)
{
	int rc = apply_class(r, PV_QDISC_DFLT_MINOR, &w->dflt);
	for (size_t i = 0; rc == 0 && i < w->n_classes; i++) {
		struct pv_shape m = pv_qdisc_merge(&w->dflt, &w->classes[i].shape);
		rc = apply_class(r, w->classes[i].minor, &m);
	}
	for (size_t i = 0; rc == 0 && i < r->s->n_cls; i++) {
		if (wanted(w, r->s->cls[i]))
			continue;
		struct nl_msg *m = NULL;
		rc = send_step(r, class_del_msg(r->s->ifindex, r->s->cls[i], &m), &m, "class delete",
			       r->s->cls[i]);
	}
	return rc;
}

static bool needs_netem(const struct pv_port_qdisc *w)
{
	if (!netem_zero(&w->dflt.netem))
		return true;
	for (size_t i = 0; i < w->n_classes; i++)
		if (!netem_zero(&w->classes[i].shape.netem))
			return true;
	return false;
}

static int delete_root(struct nl_sock *sk, int ifindex, uint32_t handle, struct ack_ctx *c)
{
	struct nl_msg *m = NULL;
	int rc = qdisc_del_msg(ifindex, TC_H_ROOT, handle, &m);
	return rc < 0 ? rc : talk(sk, m, c);
}

/* A foreign or missing root: put ours in its place, then the classes. */
static int rebuild(struct run *r, const struct pv_port_qdisc *w)
{
	struct ack_ctx c;
	struct port_state *s = r->s;
	/* a foreign root with our handle cannot be replaced in one step */
	if (s->root_handle == ROOT_HANDLE) {
		int rc = delete_root(r->sk, s->ifindex, s->root_handle, &c);
		if (rc < 0)
			return pv_err_set(r->err, -rc, "qdisc %s: cannot delete the foreign root 1: %s: %s",
					  r->ifname, s->root_kind, strerror(-rc));
	}
	struct nl_msg *m = NULL;
	int rc = send_step(r, root_msg(s->ifindex, &m), &m, "htb root", 0);
	if (rc < 0)
		return rc;
	s->n_cls = s->n_netem = 0;
	rc = apply_tree(r, w);
	if (rc < 0) /* no half-built tree */
		delete_root(r->sk, s->ifindex, ROOT_HANDLE, &c);
	return rc;
}

static int check_kinds(struct run *r, const struct pv_port_qdisc *w)
{
	const char *need[2] = {"htb", NULL};
	const char *module[2] = {"sch_htb", "sch_netem"};
	bool ours = r->s->root_handle == ROOT_HANDLE && !strcmp(r->s->root_kind, "htb");
	if (needs_netem(w) && r->s->n_netem == 0)
		need[1] = "netem";
	for (int i = ours ? 1 : 0; i < 2; i++) {
		if (!need[i])
			continue;
		int k = pv_qdisc_kind_known(r->sk, r->ifname, need[i]);
		if (k < 0)
			return pv_err_set(r->err, -k, "qdisc %s: cannot ask the kernel for %s: %s", r->ifname,
					  need[i], strerror(-k));
		if (k == 0)
			return pv_err_set(r->err, EOPNOTSUPP,
					  "qdisc %s: this kernel has no %s (%s); latency and loss need a kernel "
					  "with %s (see features)",
					  r->ifname, module[i], need[i], module[i]);
	}
	return 0;
}

int pv_qdisc_apply(struct nl_sock *sk, const char *ifname, const struct pv_port_qdisc *want,
		   struct pv_err *err)
{
	if (spec_empty(want))
		return pv_qdisc_clear(sk, ifname, err);
	int rc = check_spec(ifname, want, err);
	if (rc < 0)
		return rc;
	int ifindex = link_index(sk, ifname, err);
	if (ifindex < 0)
		return ifindex;
	struct port_state s;
	rc = read_port(sk, ifindex, &s);
	if (rc < 0) {
		state_free(&s);
		return pv_err_set(err, -rc, "qdisc %s: cannot read its qdiscs: %s", ifname, strerror(-rc));
	}
	struct run r = {sk, ifname, &s, err};
	/* before anything changes, so a refusal leaves the port as it was */
	rc = check_kinds(&r, want);
	if (rc == 0) {
		if (s.root_handle == ROOT_HANDLE && !strcmp(s.root_kind, "htb"))
			rc = apply_tree(&r, want);
		else
			rc = rebuild(&r, want);
	}
	state_free(&s);
	return rc;
}

int pv_qdisc_clear(struct nl_sock *sk, const char *ifname, struct pv_err *err)
{
	int ifindex = link_index(sk, ifname, err);
	if (ifindex < 0)
		return ifindex;
	struct port_state s;
	int rc = read_port(sk, ifindex, &s);
	state_free(&s);
	if (rc < 0)
		return pv_err_set(err, -rc, "qdisc %s: cannot read its qdiscs: %s", ifname, strerror(-rc));
	if (s.root_handle == 0) /* the device's default (noqueue, pfifo_fast) */
		return 0;
	struct ack_ctx c;
	rc = delete_root(sk, ifindex, s.root_handle, &c);
	if (rc == -ENOENT || rc == -EINVAL) /* gone meanwhile */
		return 0;
	if (rc < 0)
		return pv_err_set(err, -rc, "qdisc %s: cannot delete the root qdisc: %s%s%s", ifname,
				  strerror(-rc), c.text[0] ? ": " : "", c.text);
	return 0;
}

int pv_qdisc_kind_known(struct nl_sock *sk, const char *ifname, const char *kind)
{
	int ifindex = link_index(sk, ifname, NULL);
	if (ifindex < 0)
		return ifindex;
	struct tcmsg t = {.tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_parent = TC_H_ROOT};
	struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
	if (!m)
		return -ENOMEM;
	if (nlmsg_append(m, &t, sizeof(t), NLMSG_ALIGNTO) < 0 || nla_put_string(m, TCA_KIND, kind) < 0) {
		nlmsg_free(m);
		return -EMSGSIZE;
	}
	struct ack_ctx c;
	/* no TCA_OPTIONS: a known kind's init refuses (EINVAL) before the
	 * qdisc is grafted; an unknown kind is ENOENT before anything */
	int rc = talk(sk, m, &c);
	if (rc == -ENOENT)
		return 0;
	if (rc == -EINVAL || rc == 0) /* 0: the root already was this kind, left unchanged */
		return 1;
	return rc;
}
