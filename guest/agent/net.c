/* net: bring each NIC (found by MAC) to the name, address and state the
 * daemon assigned, and rewrite hosts/resolv.conf. Runs in a forked helper
 * because a hot-plugged NIC can take seconds to appear.
 *
 * Interface names and flags go through ioctl; addresses and the default
 * route through a few hand-built rtnetlink messages. The agent is static
 * and links only json-c, so no libnl here. */
#include "guest/agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_WAIT 10.0 /* s for a hot-plugged NIC to show up */
#define MAX_ADDRS 64

struct nic {
	unsigned char mac[6];
	const char *mac_text;
	const char *ifname; /* or NULL: keep the name */
	const char *cidr;   /* or NULL: leave addresses alone; "" = remove them */
	struct in_addr addr;
	int prefix;
	int up;
};

struct net_ctx {
	int sock; /* AF_INET datagram socket for the ioctls */
	int nl;   /* rtnetlink */
	unsigned seq;
	char err[400];
	int errnum;
};

static int fail(struct net_ctx *c, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct net_ctx *c, int errnum, const char *fmt, ...)
{
	if (!c->errnum) { /* the first failure is the one to fix first */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
		c->errnum = errnum;
	}
	return -errnum;
}

/* ---- parsing ---- */

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	char end;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	return 0;
}

static int parse_cidr(const char *s, struct in_addr *a, int *prefix)
{
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, a) != 1)
		return -EINVAL;
	*prefix = 32;
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || p < 0 || p > 32)
			return -EINVAL;
		*prefix = (int)p;
	}
	return 0;
}

static const char *opt_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int parse_nic(struct net_ctx *c, struct json_object *o, struct nic *n)
{
	struct json_object *v;
	if (!json_object_is_type(o, json_type_object))
		return fail(c, EINVAL, "net: each of \"nics\" must be an object {\"mac\", \"ifname\", \"cidr\", \"up\"}");
	n->mac_text = opt_str(o, "mac");
	if (!n->mac_text || parse_mac(n->mac_text, n->mac))
		return fail(c, EINVAL, "net: \"mac\" must look like 52:54:00:12:34:56");
	n->ifname = opt_str(o, "ifname");
	if (n->ifname && (!*n->ifname || strlen(n->ifname) >= IFNAMSIZ || strchr(n->ifname, '/')))
		return fail(c, EINVAL, "net: \"ifname\" %s is not a valid interface name (1-15 characters)",
			    n->ifname);
	n->cidr = opt_str(o, "cidr");
	if (n->cidr && *n->cidr && parse_cidr(n->cidr, &n->addr, &n->prefix))
		return fail(c, EINVAL, "net: \"cidr\" %s must look like 10.77.1.2/24", n->cidr);
	n->up = !json_object_object_get_ex(o, "up", &v) || json_object_get_boolean(v);
	return 0;
}

/* ---- ioctl side ---- */

static int find_by_mac(struct net_ctx *c, const unsigned char mac[6])
{
	struct if_nameindex *all = if_nameindex();
	int found = 0;
	for (struct if_nameindex *i = all; i && i->if_index && !found; i++) {
		struct ifreq r = {0};
		snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", i->if_name);
		if (ioctl(c->sock, SIOCGIFHWADDR, &r) == 0 && !memcmp(r.ifr_hwaddr.sa_data, mac, 6))
			found = (int)i->if_index;
	}
	if (all)
		if_freenameindex(all);
	return found;
}

static int wait_for_mac(struct net_ctx *c, const struct nic *n, double wait)
{
	double end = pv_now() + wait;
	for (;;) {
		int idx = find_by_mac(c, n->mac);
		if (idx > 0 || pv_now() >= end)
			return idx;
		usleep(100 * 1000);
	}
}

static int set_up(struct net_ctx *c, const char *name, int up)
{
	struct ifreq r = {0};
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
	if (ioctl(c->sock, SIOCGIFFLAGS, &r) < 0)
		return -errno;
	if (!!(r.ifr_flags & IFF_UP) == !!up)
		return 0;
	r.ifr_flags = up ? (r.ifr_flags | IFF_UP) : (r.ifr_flags & ~IFF_UP);
	return ioctl(c->sock, SIOCSIFFLAGS, &r) < 0 ? -errno : 0;
}

static int rename_if(struct net_ctx *c, const char *from, const char *to)
{
	struct ifreq r = {0};
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", from);
	snprintf(r.ifr_newname, sizeof(r.ifr_newname), "%s", to);
	int rc = set_up(c, from, 0); /* the kernel renames only a down interface */
	if (!rc && ioctl(c->sock, SIOCSIFNAME, &r) < 0)
		rc = -errno;
	return rc;
}

/* Give interface idx the name `want`; an other interface holding that name
 * moves aside to pvtmpN (it may be one of the NICs still to be named). */
static int name_nic(struct net_ctx *c, int idx, const char *want)
{
	char cur[IF_NAMESIZE];
	if (!if_indextoname((unsigned)idx, cur))
		return -errno;
	if (!strcmp(cur, want))
		return 0;
	int other = (int)if_nametoindex(want);
	if (other > 0 && other != idx) {
		char aside[IFNAMSIZ];
		snprintf(aside, sizeof(aside), "pvtmp%d", other);
		int rc = rename_if(c, want, aside);
		if (rc)
			return rc;
	}
	return rename_if(c, cur, want);
}

/* ---- rtnetlink side ---- */

struct nlreq {
	struct nlmsghdr h;
	union {
		struct ifaddrmsg a;
		struct rtmsg r;
	} u;
	char attrs[128];
};

static void add_attr(struct nlreq *q, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)q + NLMSG_ALIGN(q->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	q->h.nlmsg_len = NLMSG_ALIGN(q->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send one request, wait for its acknowledgement: 0 or -errno. */
static int nl_talk(struct net_ctx *c, struct nlreq *q)
{
	q->h.nlmsg_seq = ++c->seq;
	q->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(c->nl, q, q->h.nlmsg_len, 0) < 0)
		return -errno;
	char buf[8192];
	for (;;) {
		ssize_t n = recv(c->nl, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq == c->seq && h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

struct addr_list {
	struct in_addr a[MAX_ADDRS];
	unsigned char prefix[MAX_ADDRS];
	int n;
};

static void collect_addr(struct nlmsghdr *h, int idx, struct addr_list *l)
{
	struct ifaddrmsg *m = NLMSG_DATA(h);
	if (h->nlmsg_type != RTM_NEWADDR || (int)m->ifa_index != idx || l->n >= MAX_ADDRS)
		return;
	int len = (int)IFA_PAYLOAD(h);
	for (struct rtattr *a = IFA_RTA(m); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFA_LOCAL || (a->rta_type == IFA_ADDRESS && !l->prefix[l->n])) {
			memcpy(&l->a[l->n], RTA_DATA(a), 4);
			l->prefix[l->n] = (unsigned char)(m->ifa_prefixlen + 1); /* +1: "seen" */
		}
	}
	if (l->prefix[l->n])
		l->n++;
}

static int list_addrs(struct net_ctx *c, int idx, struct addr_list *l)
{
	struct nlreq q = {0};
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	q.h.nlmsg_type = RTM_GETADDR;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q.h.nlmsg_seq = ++c->seq;
	q.u.a.ifa_family = AF_INET;
	if (send(c->nl, &q, q.h.nlmsg_len, 0) < 0)
		return -errno;
	char buf[16384];
	for (;;) {
		ssize_t n = recv(c->nl, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != c->seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			collect_addr(h, idx, l);
		}
	}
}

static int addr_change(struct net_ctx *c, int type, int idx, struct in_addr a, int prefix)
{
	struct nlreq q = {0};
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	q.h.nlmsg_type = (unsigned short)type;
	if (type == RTM_NEWADDR)
		q.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	q.u.a.ifa_family = AF_INET;
	q.u.a.ifa_prefixlen = (unsigned char)prefix;
	q.u.a.ifa_scope = RT_SCOPE_UNIVERSE;
	q.u.a.ifa_index = (unsigned)idx;
	add_attr(&q, IFA_LOCAL, &a, 4);
	add_attr(&q, IFA_ADDRESS, &a, 4);
	if (type == RTM_NEWADDR && prefix < 31) {
		uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
		struct in_addr b = {.s_addr = a.s_addr | ~mask};
		add_attr(&q, IFA_BROADCAST, &b, 4);
	}
	return nl_talk(c, &q);
}

/* Exactly one IPv4 address on the NIC afterwards (none for cidr ""). */
static int set_addr(struct net_ctx *c, int idx, const struct nic *n)
{
	struct addr_list l = {0};
	int rc = list_addrs(c, idx, &l);
	for (int i = 0; !rc && i < l.n; i++) {
		int keep = *n->cidr && l.a[i].s_addr == n->addr.s_addr && l.prefix[i] - 1 == n->prefix;
		if (!keep)
			rc = addr_change(c, RTM_DELADDR, idx, l.a[i], l.prefix[i] - 1);
	}
	if (!rc && *n->cidr)
		rc = addr_change(c, RTM_NEWADDR, idx, n->addr, n->prefix);
	return rc;
}

/* Default route via gw, or none when gw is "". */
static int set_gateway(struct net_ctx *c, const char *gw)
{
	struct in_addr a;
	if (*gw && inet_pton(AF_INET, gw, &a) != 1)
		return fail(c, EINVAL, "net: \"gateway\" %s must be an IPv4 address like 10.77.1.1", gw);
	struct nlreq q = {0};
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	q.h.nlmsg_type = *gw ? RTM_NEWROUTE : RTM_DELROUTE;
	q.h.nlmsg_flags = *gw ? NLM_F_CREATE | NLM_F_REPLACE : 0;
	q.u.r.rtm_family = AF_INET;
	q.u.r.rtm_table = RT_TABLE_MAIN;
	q.u.r.rtm_protocol = RTPROT_BOOT;
	q.u.r.rtm_scope = *gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE;
	q.u.r.rtm_type = RTN_UNICAST;
	if (*gw)
		add_attr(&q, RTA_GATEWAY, &a, 4);
	int rc = nl_talk(c, &q);
	if (rc == -ESRCH && !*gw)
		rc = 0; /* no default route to remove */
	if (rc)
		fail(c, -rc, "net: default route via %s: %s", *gw ? gw : "(none)", strerror(-rc));
	return rc;
}

/* ---- the request ---- */

static struct json_object *apply_nic(struct net_ctx *c, const struct nic *n, double wait)
{
	int idx = wait_for_mac(c, n, wait);
	if (idx <= 0) {
		fail(c, ENODEV, "net: no interface with MAC %s after %.0f s: is the NIC plugged in?",
		     n->mac_text, wait);
		return NULL;
	}
	int rc = n->ifname ? name_nic(c, idx, n->ifname) : 0;
	if (rc) {
		fail(c, -rc, "net: renaming the NIC %s to %s: %s", n->mac_text, n->ifname, strerror(-rc));
		return NULL;
	}
	char name[IF_NAMESIZE];
	if (!if_indextoname((unsigned)idx, name)) {
		fail(c, errno, "net: NIC %s went away: %s", n->mac_text, strerror(errno));
		return NULL;
	}
	if (n->cidr && (rc = set_addr(c, idx, n))) {
		fail(c, -rc, "net: address %s on %s: %s", *n->cidr ? n->cidr : "(none)", name, strerror(-rc));
		return NULL;
	}
	if ((rc = set_up(c, name, n->up))) {
		fail(c, -rc, "net: setting %s %s: %s", name, n->up ? "up" : "down", strerror(-rc));
		return NULL;
	}
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "mac", json_object_new_string(n->mac_text));
	json_object_object_add(r, "ifname", json_object_new_string(name));
	json_object_object_add(r, "ifindex", json_object_new_int(idx));
	return r;
}

static int parse_nics(struct net_ctx *c, struct json_object *req, struct nic **out, size_t *count)
{
	struct json_object *arr;
	*out = NULL;
	*count = 0;
	if (!json_object_object_get_ex(req, "nics", &arr) || !arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return fail(c, EINVAL, "net: \"nics\" must be an array");
	size_t n = json_object_array_length(arr);
	*out = calloc(n ? n : 1, sizeof(struct nic));
	if (!*out)
		return fail(c, ENOMEM, "net: out of memory");
	for (size_t i = 0; i < n; i++) {
		int rc = parse_nic(c, json_object_array_get_idx(arr, i), &(*out)[i]);
		if (rc)
			return rc;
	}
	*count = n;
	return 0;
}

static void write_etc(struct net_ctx *c, struct json_object *req, const char *key, const char *etc,
		      const char *name)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return;
	int rc = files_replace(etc, name, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	if (rc)
		fail(c, -rc, "net: writing %s/%s: %s", etc, name, strerror(-rc));
}

static double req_wait(struct json_object *req)
{
	struct json_object *v;
	if (json_object_object_get_ex(req, "wait", &v) &&
	    (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return json_object_get_double(v) < 0 ? 0 : json_object_get_double(v);
	return DEFAULT_WAIT;
}

struct json_object *net_apply(struct json_object *id, struct json_object *req, const char *etc)
{
	struct net_ctx c = {.sock = -1, .nl = -1};
	struct nic *nics = NULL;
	size_t count = 0;
	if (parse_nics(&c, req, &nics, &count) == 0) {
		c.sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		c.nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
		if (c.sock < 0 || c.nl < 0)
			fail(&c, errno, "net: socket: %s", strerror(errno));
	}
	struct json_object *done = json_object_new_array();
	if (!c.errnum) {
		set_up(&c, "lo", 1);
		double wait = req_wait(req);
		/* a NIC that fails does not stop the others, nor the hosts file */
		for (size_t i = 0; i < count; i++) {
			struct json_object *r = apply_nic(&c, &nics[i], wait);
			if (r)
				json_object_array_add(done, r);
		}
		const char *gw = opt_str(req, "gateway");
		if (gw)
			set_gateway(&c, gw);
		write_etc(&c, req, "hosts", etc, "hosts");
		write_etc(&c, req, "resolv_conf", etc, "resolv.conf");
	}
	if (c.sock >= 0)
		close(c.sock);
	if (c.nl >= 0)
		close(c.nl);
	free(nics);
	if (c.errnum) {
		json_object_put(done);
		return agent_msg_err(id, c.errnum, "%s", c.err);
	}
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "nics", done);
	return agent_msg_ok(id, r);
}
