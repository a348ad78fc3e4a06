#include "netcore/links.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/ip.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>

#include "netcore/netns.h"

struct pv_links {
	struct nl_sock *sk;
	/* Counters are read on every `counters` file read: a bare libmnl
	 * request parsed in place costs a fraction of a libnl object. */
	struct mnl_socket *mnl;
	unsigned int seq;
};

/* libnl folds kernel errnos into its own codes; callers speak errno. */
static int nle_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case NLE_EXIST: return EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV: return ENOENT;
	case NLE_PERM: return EPERM;
	case NLE_NOACCESS: return EACCES;
	case NLE_INVAL: return EINVAL;
	case NLE_RANGE: return ERANGE;
	case NLE_NOMEM: return ENOMEM;
	case NLE_BUSY: return EBUSY;
	case NLE_AGAIN: return EAGAIN;
	case NLE_OPNOTSUPP: return EOPNOTSUPP;
	case NLE_AF_NOSUPPORT: return EAFNOSUPPORT;
	case NLE_NOADDR: return EADDRNOTAVAIL;
	case NLE_MSGSIZE: return EMSGSIZE;
	default: return EIO;
	}
}

static int check_ifname(const char *what, const char *name, struct pv_err *err)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
		return pv_err_set(err, EINVAL, "%s '%s': not a valid interface name (1-%d chars, no '/')",
				  what, name ? name : "(null)", IFNAMSIZ - 1);
	return 0;
}

static int sock_open(struct nl_sock **out)
{
	struct nl_sock *sk = nl_socket_alloc();
	int rc;

	if (!sk)
		return -ENOMEM;
	rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		nl_socket_free(sk);
		return -nle_errno(rc);
	}
	*out = sk;
	return 0;
}

int pv_links_open(struct pv_links **out, struct pv_err *err)
{
	struct pv_links *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return pv_err_set(err, ENOMEM, "links: out of memory");
	rc = sock_open(&l->sk);
	if (rc < 0) {
		free(l);
		return pv_err_set(err, -rc, "links: cannot open a route netlink socket: %s",
				  strerror(-rc));
	}
	errno = 0;
	l->mnl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!l->mnl || mnl_socket_bind(l->mnl, 0, MNL_SOCKET_AUTOPID) < 0) {
		rc = errno ? errno : EIO;
		pv_links_close(l);
		return pv_err_set(err, rc, "links: cannot open a route netlink socket: %s",
				  strerror(rc));
	}
	*out = l;
	return 0;
}

void pv_links_close(struct pv_links *l)
{
	if (!l)
		return;
	nl_socket_free(l->sk);
	if (l->mnl)
		mnl_socket_close(l->mnl);
	free(l);
}

/* One RTM_GETLINK by name; no cache, so the cost does not grow with the
 * number of links in the namespace. Returns 0 or a libnl code. */
static int ifindex_of(struct nl_sock *sk, const char *name, int *idx)
{
	struct rtnl_link *link;
	int rc = rtnl_link_get_kernel(sk, 0, name, &link);

	if (rc < 0)
		return rc;
	*idx = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	return 0;
}

/* RTM_NEWLINK without NLM_F_CREATE, addressed by name: one round trip and
 * no ifindex lookup. Returns 0 or a libnl code. */
static int set_up_by_name(struct nl_sock *sk, const char *name, bool up)
{
	struct ifinfomsg ifi = {
		.ifi_family = AF_UNSPEC,
		.ifi_change = IFF_UP,
		.ifi_flags = up ? IFF_UP : 0,
	};
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);

	if (!msg)
		return -NLE_NOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, name) < 0) {
		nlmsg_free(msg);
		return -NLE_MSGSIZE;
	}
	return nl_send_sync(sk, msg);
}

/* libnl 3.7 has no setters for bridge options (IFLA_BR_*), so the request is
 * built by hand: kind bridge, STP off, forward delay 0, up at creation. */
static int bridge_create(struct nl_sock *sk, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_change = IFF_UP, .ifi_flags = IFF_UP };
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct nlattr *info, *data;

	if (!msg)
		return -NLE_NOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, name) < 0 ||
	    !(info = nla_nest_start(msg, IFLA_LINKINFO)) ||
	    nla_put_string(msg, IFLA_INFO_KIND, "bridge") < 0 ||
	    !(data = nla_nest_start(msg, IFLA_INFO_DATA)) ||
	    nla_put_u32(msg, IFLA_BR_STP_STATE, 0) < 0 ||
	    nla_put_u32(msg, IFLA_BR_FORWARD_DELAY, 0) < 0) {
		nlmsg_free(msg);
		return -NLE_MSGSIZE;
	}
	nla_nest_end(msg, data);
	nla_nest_end(msg, info);
	return nl_send_sync(sk, msg);
}

int pv_links_bridge_add(struct pv_links *l, const char *ifname, struct pv_err *err)
{
	int rc = check_ifname("bridge", ifname, err);

	if (rc < 0)
		return rc;
	rc = bridge_create(l->sk, ifname);
	/* Already there (a restart re-applying the graph): just make sure it is up. */
	if (rc == -NLE_EXIST)
		rc = set_up_by_name(l->sk, ifname, true);
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc), "bridge %s: cannot create: %s", ifname,
				  nl_geterror(rc));
	return 0;
}

static int link_delete(struct nl_sock *sk, const char *ifname)
{
	struct rtnl_link *link = rtnl_link_alloc();
	int rc;

	if (!link)
		return -NLE_NOMEM;
	rtnl_link_set_name(link, ifname);
	rc = rtnl_link_delete(sk, link);
	rtnl_link_put(link);
	return rc;
}

int pv_links_del(struct pv_links *l, const char *ifname, struct pv_err *err)
{
	int rc = check_ifname("link", ifname, err);

	if (rc < 0)
		return rc;
	rc = link_delete(l->sk, ifname);
	if (rc < 0 && nle_errno(rc) != ENOENT)
		return pv_err_set(err, nle_errno(rc), "link %s: cannot delete: %s", ifname,
				  nl_geterror(rc));
	return 0;
}

/* Returns 0 or a libnl code. */
static int addr_add(struct nl_sock *sk, int ifindex, const char *cidr)
{
	struct nl_addr *local = NULL;
	struct rtnl_addr *addr;
	/* whatever libnl says about a string it cannot read, it is bad input */
	if (nl_addr_parse(cidr, AF_UNSPEC, &local) < 0)
		return -NLE_INVAL;
	int rc;
	if (nl_addr_get_family(local) != AF_INET && nl_addr_get_family(local) != AF_INET6) {
		nl_addr_put(local);
		return -NLE_INVAL;
	}
	addr = rtnl_addr_alloc();
	if (!addr) {
		nl_addr_put(local);
		return -NLE_NOMEM;
	}
	rtnl_addr_set_ifindex(addr, ifindex);
	rc = rtnl_addr_set_local(addr, local);
	if (rc == 0) {
		rtnl_addr_set_prefixlen(addr, nl_addr_get_prefixlen(local));
		rc = rtnl_addr_add(sk, addr, 0);
	}
	rtnl_addr_put(addr);
	nl_addr_put(local);
	/* Asking twice for the same address is not a conflict. */
	return rc == -NLE_EXIST ? 0 : rc;
}

int pv_links_addr_add(struct pv_links *l, const char *ifname, const char *cidr,
		      struct pv_err *err)
{
	int idx, rc = check_ifname("link", ifname, err);

	if (rc < 0)
		return rc;
	rc = ifindex_of(l->sk, ifname, &idx);
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc), "link %s: cannot add address %s: %s", ifname,
				  cidr ? cidr : "(null)", nl_geterror(rc));
	rc = cidr ? addr_add(l->sk, idx, cidr) : -NLE_INVAL;
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc),
				  "link %s: cannot add address %s: %s (want e.g. 10.77.1.1/24)",
				  ifname, cidr ? cidr : "(null)", nl_geterror(rc));
	return 0;
}

int pv_links_set_up(struct pv_links *l, const char *ifname, bool up, struct pv_err *err)
{
	int rc = check_ifname("link", ifname, err);

	if (rc < 0)
		return rc;
	rc = set_up_by_name(l->sk, ifname, up);
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc), "link %s: cannot set %s: %s", ifname,
				  up ? "up" : "down", nl_geterror(rc));
	return 0;
}

bool pv_links_exists(struct pv_links *l, const char *ifname)
{
	int idx;

	return ifname && strlen(ifname) < IFNAMSIZ && ifindex_of(l->sk, ifname, &idx) == 0;
}

struct stats_reply {
	struct rtnl_link_stats64 s;
	bool seen;
};

static int stats_attr(const struct nlattr *a, void *data)
{
	struct stats_reply *r = data;

	if (mnl_attr_get_type(a) == IFLA_STATS64 &&
	    mnl_attr_get_payload_len(a) >= sizeof(r->s)) {
		/* the payload is only 4-byte aligned: copy, do not cast */
		memcpy(&r->s, mnl_attr_get_payload(a), sizeof(r->s));
		r->seen = true;
	}
	return MNL_CB_OK;
}

static int stats_msg(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		mnl_attr_parse(nlh, sizeof(struct ifinfomsg), stats_attr, data);
	return MNL_CB_OK;
}

/* Returns the reply's length or -errno. A reply left over from a call cut
 * short (EINTR) would otherwise shift every later answer by one: anything
 * not carrying our sequence number is dropped. */
static ssize_t stats_recv(struct pv_links *l, char *buf, size_t len)
{
	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(l->mnl), buf, len, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n > len)
			return -EMSGSIZE;
		if ((size_t)n >= sizeof(struct nlmsghdr) &&
		    ((struct nlmsghdr *)buf)->nlmsg_seq == l->seq)
			return n;
	}
}

int pv_links_stats(struct pv_links *l, const char *ifname, struct pv_link_stats *out)
{
	/* One link's reply is a few KB (AF_SPEC, linkinfo, stats); 16 KB is ample. */
	char buf[16384] __attribute__((aligned(8)));
	struct stats_reply r = { 0 };
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	ssize_t n;

	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++l->seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	if (mnl_socket_sendto(l->mnl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = stats_recv(l, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (mnl_cb_run(buf, n, l->seq, mnl_socket_get_portid(l->mnl), stats_msg, &r) < 0)
		return errno == ENODEV ? -ENOENT : -errno;
	if (!r.seen)
		return -EIO;
	*out = (struct pv_link_stats){
		.rx_bytes = r.s.rx_bytes, .tx_bytes = r.s.tx_bytes,
		.rx_packets = r.s.rx_packets, .tx_packets = r.s.tx_packets,
		.rx_errors = r.s.rx_errors, .tx_errors = r.s.tx_errors,
	};
	return 0;
}

/* --- veth ports --------------------------------------------------------- */

/* Builds the whole pair in one request: host end named, enslaved and maybe
 * up; peer named, addressed and placed in its namespace at birth, so it
 * never shows up (or collides by name) in the handle's namespace. */
static int veth_create(struct nl_sock *sk, const struct pv_veth_spec *s, int master_idx)
{
	struct rtnl_link *link = rtnl_link_veth_alloc();
	struct rtnl_link *peer;
	struct nl_addr *mac;
	int rc;

	if (!link)
		return -NLE_NOMEM;
	rtnl_link_set_name(link, s->host_ifname);
	if (master_idx > 0)
		rtnl_link_set_master(link, master_idx);
	if (s->host_up)
		rtnl_link_set_flags(link, IFF_UP);
	peer = rtnl_link_veth_get_peer(link);
	rtnl_link_set_name(peer, s->peer_ifname);
	rtnl_link_set_ns_fd(peer, s->peer_nsfd);
	/* an all-zero MAC means "let the kernel pick one" */
	static const uint8_t zero[6];
	bool want_mac = memcmp(s->peer_mac, zero, sizeof(zero)) != 0;
	mac = want_mac ? nl_addr_build(AF_LLC, s->peer_mac, sizeof(s->peer_mac)) : NULL;
	if (mac) {
		rtnl_link_set_addr(peer, mac);
		nl_addr_put(mac);
	}
	rtnl_link_put(peer);
	rc = (mac || !want_mac) ? rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL) : -NLE_NOMEM;
	rtnl_link_put(link);
	return rc;
}

/* A socket is bound to the namespace of the thread that makes it, so a short
 * visit is enough; all later requests go through it from home. */
static int sock_open_in(int nsfd, struct nl_sock **out)
{
	int saved, rc = pv_netns_enter(nsfd, &saved);

	if (rc < 0)
		return rc;
	rc = sock_open(out);
	int back = pv_netns_leave(saved);
	if (back < 0) {
		if (rc == 0)
			nl_socket_free(*out);
		return back;
	}
	return rc;
}

/* Bring a node's NIC up with arp_notify on, so it announces itself
 * (gratuitous ARP) whenever it comes up: peers that cached another MAC for
 * a reused address learn the new one at once instead of after seconds of
 * failed probes. */
static int peer_up_announcing(struct nl_sock *sk, const char *name)
{
	struct ifinfomsg ifi = {
		.ifi_family = AF_UNSPEC,
		.ifi_change = IFF_UP,
		.ifi_flags = IFF_UP,
	};
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	struct nlattr *spec, *inet, *conf;

	if (!msg)
		return -NLE_NOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, name) < 0 ||
	    !(spec = nla_nest_start(msg, IFLA_AF_SPEC)) || !(inet = nla_nest_start(msg, AF_INET)) ||
	    !(conf = nla_nest_start(msg, IFLA_INET_CONF)) ||
	    nla_put_u32(msg, IPV4_DEVCONF_ARP_NOTIFY, 1) < 0) {
		nlmsg_free(msg);
		return -NLE_MSGSIZE;
	}
	nla_nest_end(msg, conf);
	nla_nest_end(msg, inet);
	nla_nest_end(msg, spec);
	return nl_send_sync(sk, msg);
}

/* Peer side, inside its namespace: address, up, and `lo` up. Returns 0 or
 * a libnl code; *step names what failed. */
static int veth_peer_setup(struct nl_sock *psk, const struct pv_veth_spec *s, const char **step)
{
	int idx, rc;

	*step = "find";
	rc = ifindex_of(psk, s->peer_ifname, &idx);
	if (rc == 0 && s->peer_cidr) {
		*step = "add address to";
		rc = addr_add(psk, idx, s->peer_cidr);
	}
	if (rc == 0) {
		*step = "bring up";
		rc = peer_up_announcing(psk, s->peer_ifname);
	}
	if (rc == 0) {
		*step = "bring up lo next to";
		rc = set_up_by_name(psk, "lo", true);
	}
	return rc;
}

static int veth_check(const struct pv_veth_spec *s, struct pv_err *err)
{
	int rc = check_ifname("veth host end", s->host_ifname, err);

	if (rc == 0)
		rc = check_ifname("veth peer", s->peer_ifname, err);
	if (rc == 0 && s->master)
		rc = check_ifname("veth master", s->master, err);
	if (rc == 0 && s->peer_nsfd < 0)
		rc = pv_err_set(err, EBADF, "veth %s: no peer namespace fd (open the node's netns first)",
				s->host_ifname);
	return rc;
}

int pv_links_veth_add(struct pv_links *l, const struct pv_veth_spec *s, struct pv_err *err)
{
	struct nl_sock *psk;
	const char *step;
	int master_idx = 0, rc = veth_check(s, err);

	if (rc < 0)
		return rc;
	if (s->master && (rc = ifindex_of(l->sk, s->master, &master_idx)) < 0)
		return pv_err_set(err, nle_errno(rc), "veth %s: master bridge %s: %s (create the bridge first)",
				  s->host_ifname, s->master, nl_geterror(rc));
	rc = veth_create(l->sk, s, master_idx);
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc), "veth %s (peer %s): cannot create: %s",
				  s->host_ifname, s->peer_ifname, nl_geterror(rc));
	rc = sock_open_in(s->peer_nsfd, &psk);
	if (rc < 0) {
		link_delete(l->sk, s->host_ifname);
		return pv_err_set(err, -rc, "veth %s: cannot enter the peer namespace: %s",
				  s->host_ifname, strerror(-rc));
	}
	rc = veth_peer_setup(psk, s, &step);
	nl_socket_free(psk);
	if (rc < 0) {
		/* Half a port is worse than none: deleting the host end takes the peer. */
		link_delete(l->sk, s->host_ifname);
		return pv_err_set(err, nle_errno(rc), "veth %s: cannot %s peer %s (%s): %s",
				  s->host_ifname, step, s->peer_ifname,
				  s->peer_cidr ? s->peer_cidr : "no address", nl_geterror(rc));
	}
	return 0;
}

/* ---- TAPs for VM NICs ---- */

/* A persistent TAP made here, in the handle's namespace (the calling thread
 * must be in it too: /dev/net/tun creates in the caller's namespace). QEMU
 * later attaches to it by name, so the port exists, enslaved and up, before
 * QEMU starts or hot-plugs the NIC. */
static int tap_create(const char *ifname)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	int rc = 0;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int set_master_up(struct nl_sock *sk, const char *name, int master_idx)
{
	struct ifinfomsg ifi = {
		.ifi_family = AF_UNSPEC,
		.ifi_change = IFF_UP,
		.ifi_flags = IFF_UP,
	};
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_NEWLINK, 0);

	if (!msg)
		return -NLE_NOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, name) < 0 ||
	    nla_put_u32(msg, IFLA_MASTER, (uint32_t)master_idx) < 0) {
		nlmsg_free(msg);
		return -NLE_MSGSIZE;
	}
	return nl_send_sync(sk, msg);
}

int pv_links_tap_add(struct pv_links *l, const char *ifname, const char *master,
		     struct pv_err *err)
{
	int rc = check_ifname("tap", ifname, err);
	if (rc < 0)
		return rc;
	int midx;
	rc = ifindex_of(l->sk, master, &midx);
	if (rc < 0)
		return pv_err_set(err, nle_errno(rc), "tap %s: no bridge %s: %s", ifname, master,
				  nl_geterror(rc));
	rc = tap_create(ifname);
	if (rc < 0)
		return pv_err_set(err, -rc, "tap %s: cannot create it: %s", ifname, strerror(-rc));
	rc = set_master_up(l->sk, ifname, midx);
	if (rc < 0) {
		link_delete(l->sk, ifname);
		return pv_err_set(err, nle_errno(rc), "tap %s: cannot enslave it to %s: %s", ifname,
				  master, nl_geterror(rc));
	}
	return 0;
}

struct nl_sock *pv_links_sock(struct pv_links *l)
{
	return l->sk;
}
