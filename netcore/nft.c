/* The lab's nftables table through libnftnl + libmnl: see nft.h for the
 * ruleset. The handle keeps, per set, a hash table of what the kernel holds
 * since the last successful batch, so an apply sends only the difference. */
#include "netcore/nft.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#define IFNAME_LEN 16
#define NF_BR_FORWARD_HOOK 2 /* linux/netfilter_bridge.h, whose includes clash with libc */

/* nft's datatype ids, so `nft list` prints the sets with their real types:
 * ifname is 41; a concatenation packs each field's id in 6 bits. */
#define DT_IFNAME 41u
#define DT_IFNAME_PAIR ((DT_IFNAME << 6) | DT_IFNAME)
#define DT_CLASSID 23u
#define BYTEORDER_HOST 1 /* nft's enum byteorder */

/* Sets are plain hashes: nft itself sends no NFT_SET_CONCAT flag and no
 * concat description for a concatenated key without intervals (checked with
 * `nft --debug=mnl`), the 32-byte key length is enough. */

/* A message of many elements stays far below the 64 KiB netlink attribute
 * limit of its nested element list. */
#define ELEMS_PER_MSG 256
#define ELEM_ROOM 128 /* bytes one element takes in a message, with margin */
#define MSG_ROOM 1024 /* bytes any other message takes, with margin */
#define ACK_WAIT_MS 2000

enum { S_DROP, S_ISOLATED, S_ONEWAY, S_PRIO, S_COUNT };

/* clang-format off */
static const struct setdef {
	const char *name;
	uint32_t klen, ktype, flags, dtype, dlen;
} SETS[S_COUNT] = {
	[S_DROP] = { "drop_pairs", 2 * IFNAME_LEN, DT_IFNAME_PAIR, 0, 0, 0 },
	[S_ISOLATED] = { "isolated", IFNAME_LEN, DT_IFNAME, 0, 0, 0 },
	[S_ONEWAY] = { "oneway", 2 * IFNAME_LEN, DT_IFNAME_PAIR, 0, 0, 0 },
	[S_PRIO] = { "prio", 2 * IFNAME_LEN, DT_IFNAME_PAIR, NFT_SET_MAP, DT_CLASSID, 4 },
};
/* clang-format on */

/* ---- open-addressing hash table of keys (linear probing) ---- */

struct ent {
	uint8_t key[2 * IFNAME_LEN];
	uint32_t val;  /* classid for the prio map */
	uint32_t mark; /* 0 = empty slot; else the apply generation that saw it */
};

struct tab {
	struct ent *e;
	size_t cap, n; /* cap is 0 or a power of two */
};

/* A slot is live in the record when mark != 0 (gen 0); in a scratch table
 * only when mark == gen, so a scratch table empties itself when the
 * generation moves on and is never cleared. */
static bool live(const struct ent *e, uint32_t gen)
{
	return gen ? e->mark == gen : e->mark != 0;
}

static size_t khash(const uint8_t *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 4; i++) {
		uint64_t w;
		memcpy(&w, k + 8 * i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return (size_t)h;
}

static struct ent *tab_find(const struct tab *t, const uint8_t *k, uint32_t gen)
{
	if (!t->cap)
		return NULL;
	size_t mask = t->cap - 1;
	for (size_t i = khash(k) & mask; live(&t->e[i], gen); i = (i + 1) & mask)
		if (!memcmp(t->e[i].key, k, sizeof(t->e[i].key)))
			return &t->e[i];
	return NULL;
}

/* The caller made room with tab_reserve, so this cannot fail. */
static struct ent *tab_put(struct tab *t, const uint8_t *k, uint32_t val, uint32_t mark,
			   uint32_t gen)
{
	size_t mask = t->cap - 1, i = khash(k) & mask;
	while (live(&t->e[i], gen))
		i = (i + 1) & mask;
	memcpy(t->e[i].key, k, sizeof(t->e[i].key));
	t->e[i].val = val;
	t->e[i].mark = mark;
	t->n++;
	return &t->e[i];
}

/* Keep the load at most one half for `want` live entries. */
static int tab_reserve(struct tab *t, size_t want, uint32_t gen)
{
	if (want * 2 <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap : 64;
	while (want * 2 > cap)
		cap *= 2;
	struct tab nt = {calloc(cap, sizeof(struct ent)), cap, 0};
	if (!nt.e)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (live(&t->e[i], gen))
			tab_put(&nt, t->e[i].key, t->e[i].val, t->e[i].mark, gen);
	free(t->e);
	*t = nt;
	return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void tab_del(struct tab *t, struct ent *victim)
{
	size_t mask = t->cap - 1, i = (size_t)(victim - t->e), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!t->e[j].mark)
			break;
		size_t home = khash(t->e[j].key) & mask;
		/* move e[j] into the hole unless its home lies cyclically in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	t->e[i].mark = 0;
	t->n--;
}

/* ---- the change list of one apply ---- */

struct chg {
	uint8_t key[2 * IFNAME_LEN];
	uint32_t val;
};

struct chglist {
	struct chg *c;
	size_t n, cap;
};

static int chg_push(struct chglist *l, const uint8_t *k, uint32_t val)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct chg *c = realloc(l->c, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		l->c = c;
		l->cap = cap;
	}
	memcpy(l->c[l->n].key, k, sizeof(l->c[l->n].key));
	l->c[l->n++].val = val;
	return 0;
}

/* ---- the handle ---- */

struct pv_nft {
	struct mnl_socket *nl;
	uint32_t portid, seq, gen;
	int sndbuf;
	char *buf; /* the batch being built */
	size_t len, cap;
	struct tab cur[S_COUNT];     /* what the kernel holds */
	struct tab pending[S_COUNT]; /* scratch: additions of this apply, deduplicated */
	struct chglist add[S_COUNT], del[S_COUNT];
};

/* ---- batch building ---- */

struct batch {
	struct pv_nft *n;
	uint32_t first_seq;
	unsigned nmsg; /* messages that ask for an ack */
	int err;       /* first failure while building */
};

static char *batch_room(struct batch *b, size_t need)
{
	struct pv_nft *n = b->n;
	if (n->len + need > n->cap) {
		size_t cap = n->cap ? n->cap : 16384;
		while (n->len + need > cap)
			cap *= 2;
		char *p = realloc(n->buf, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		/* libnftnl writes headers without clearing pad bytes */
		memset(p + n->cap, 0, cap - n->cap);
		n->buf = p;
		n->cap = cap;
	}
	return n->buf + n->len;
}

static void batch_done_msg(struct batch *b, struct nlmsghdr *h)
{
	b->n->len += NLMSG_ALIGN(h->nlmsg_len);
}

static void batch_start(struct batch *b, struct pv_nft *n)
{
	*b = (struct batch){.n = n};
	n->len = 0;
	char *p = batch_room(b, MSG_ROOM);
	if (p)
		batch_done_msg(b, nftnl_batch_begin(p, n->seq++));
	b->first_seq = n->seq;
}

static void batch_end(struct batch *b)
{
	char *p = batch_room(b, MSG_ROOM);
	if (p)
		batch_done_msg(b, nftnl_batch_end(p, b->n->seq++));
}

/* Header of the next acked message, or NULL (b->err set) without room. */
static struct nlmsghdr *batch_msg(struct batch *b, uint16_t type, uint16_t flags, size_t room)
{
	char *p = batch_room(b, room);
	if (!p)
		return NULL;
	b->nmsg++;
	return nftnl_nlmsg_build_hdr(p, type, NFPROTO_BRIDGE, flags | NLM_F_ACK, b->n->seq++);
}

/* ---- talking to the kernel ---- */

static int grow_sndbuf(struct pv_nft *n, size_t len)
{
	/* netlink refuses a datagram larger than the send buffer */
	if (len + 1024 <= (size_t)n->sndbuf)
		return 0;
	int want = (int)(2 * len + 4096);
	int fd = mnl_socket_get_fd(n->nl);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)))
		return -errno;
	n->sndbuf = want;
	return 0;
}

/* Count acks and note the first error in one datagram of replies. */
static void read_replies(const struct batch *b, const char *buf, size_t len, unsigned *got,
			 int *kerr)
{
	const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
	int left = (int)len;
	for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
		/* replies to an earlier, abandoned batch carry older numbers; the
		 * batch begin message (first_seq - 1) is answered when refused as
		 * a whole, e.g. EPERM without CAP_NET_ADMIN */
		if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq + 1 < b->first_seq ||
		    h->nlmsg_seq >= b->first_seq + b->nmsg)
			continue;
		const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
		(*got)++;
		if (e->error && !*kerr)
			*kerr = e->error;
	}
}

/* Send the batch and read every reply. The kernel handles a batch inside
 * sendmsg, so the replies are queued by the time it returns; the wait only
 * guards against a kernel that stops acking after a fatal error. */
static int batch_send(struct batch *b)
{
	struct pv_nft *n = b->n;
	if (b->err)
		return b->err;
	int ret = grow_sndbuf(n, n->len);
	if (ret)
		return ret;
	if (mnl_socket_sendto(n->nl, n->buf, n->len) < 0)
		return -errno;
	char rbuf[MNL_SOCKET_BUFFER_SIZE];
	unsigned got = 0;
	int kerr = 0, fd = mnl_socket_get_fd(n->nl);
	while (got < b->nmsg) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, kerr ? 0 : ACK_WAIT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t len = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
		if (len < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		read_replies(b, rbuf, (size_t)len, &got, &kerr);
	}
	if (kerr)
		return kerr;
	return got == b->nmsg ? 0 : -ETIMEDOUT;
}

/* ---- the ruleset ---- */

enum op_kind {
	OP_END,
	OP_META_LOAD,
	OP_META_SET,
	OP_LOOKUP,
	OP_MAP,
	OP_CMP,
	OP_TH_BYTE,
	OP_VERDICT
};

struct op {
	uint8_t kind;
	uint32_t a, b; /* meta key + register, set index, cmp op, verdict */
	const uint8_t *data;
	uint32_t len;
};

/* clang-format off */
static const uint8_t PROTO_ARP[2] = { 0x08, 0x06 }; /* network byte order */
static const uint8_t PROTO_IP6[2] = { 0x86, 0xdd };
static const uint8_t L4_ICMPV6[1] = { 58 };
static const uint8_t ND_FIRST[1] = { 133 }; /* router solicitation */
static const uint8_t ND_LAST[1] = { 137 };  /* redirect */

#define PAIR_LOAD { OP_META_LOAD, NFT_META_IIFNAME, NFT_REG_1, 0, 0 }, \
		  { OP_META_LOAD, NFT_META_OIFNAME, NFT_REG_2, 0, 0 }

/* In nft.h's order: the expressions `nft --debug=netlink` shows for each. */
static const struct op RULES[][9] = {
	{ PAIR_LOAD, { OP_LOOKUP, S_DROP, 0, 0, 0 }, { OP_VERDICT, NF_DROP, 0, 0, 0 } },
	{ { OP_META_LOAD, NFT_META_IIFNAME, NFT_REG_1, 0, 0 },
	  { OP_LOOKUP, S_ISOLATED, 0, 0, 0 },
	  { OP_VERDICT, NF_DROP, 0, 0, 0 } },
	{ { OP_META_LOAD, NFT_META_OIFNAME, NFT_REG_1, 0, 0 },
	  { OP_LOOKUP, S_ISOLATED, 0, 0, 0 },
	  { OP_VERDICT, NF_DROP, 0, 0, 0 } },
	{ { OP_META_LOAD, NFT_META_PROTOCOL, NFT_REG_1, 0, 0 },
	  { OP_CMP, NFT_CMP_EQ, 0, PROTO_ARP, 2 },
	  { OP_VERDICT, NF_ACCEPT, 0, 0, 0 } },
	{ { OP_META_LOAD, NFT_META_PROTOCOL, NFT_REG_1, 0, 0 },
	  { OP_CMP, NFT_CMP_EQ, 0, PROTO_IP6, 2 },
	  { OP_META_LOAD, NFT_META_L4PROTO, NFT_REG_1, 0, 0 },
	  { OP_CMP, NFT_CMP_EQ, 0, L4_ICMPV6, 1 },
	  { OP_TH_BYTE, 0, 0, 0, 0 },
	  { OP_CMP, NFT_CMP_GTE, 0, ND_FIRST, 1 },
	  { OP_CMP, NFT_CMP_LTE, 0, ND_LAST, 1 },
	  { OP_VERDICT, NF_ACCEPT, 0, 0, 0 } },
	{ PAIR_LOAD, { OP_LOOKUP, S_ONEWAY, 0, 0, 0 }, { OP_VERDICT, NF_DROP, 0, 0, 0 } },
	{ PAIR_LOAD, { OP_MAP, S_PRIO, 0, 0, 0 }, { OP_META_SET, NFT_META_PRIORITY, NFT_REG_1, 0, 0 } },
};
/* clang-format on */

static struct nftnl_expr *op_expr(const struct op *o)
{
	static const char *const names[] = {
	    [OP_META_LOAD] = "meta",	[OP_META_SET] = "meta", [OP_LOOKUP] = "lookup",
	    [OP_MAP] = "lookup",	[OP_CMP] = "cmp",	[OP_TH_BYTE] = "payload",
	    [OP_VERDICT] = "immediate",
	};
	struct nftnl_expr *e = nftnl_expr_alloc(names[o->kind]);
	if (!e)
		return NULL;
	int bad = 0;
	switch (o->kind) {
	case OP_META_LOAD:
	case OP_META_SET:
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, o->a);
		nftnl_expr_set_u32(
		    e, o->kind == OP_META_SET ? NFTNL_EXPR_META_SREG : NFTNL_EXPR_META_DREG, o->b);
		break;
	case OP_MAP:
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
		/* fall through */
	case OP_LOOKUP:
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
		bad = nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, SETS[o->a].name);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, o->a + 1);
		break;
	case OP_CMP:
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, o->a);
		bad = nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, o->data, o->len);
		break;
	case OP_TH_BYTE: /* the ICMPv6 type: first byte of the transport header */
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 0);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
		break;
	case OP_VERDICT:
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, o->a);
		break;
	}
	if (bad) {
		nftnl_expr_free(e);
		return NULL;
	}
	return e;
}

static void put_rule(struct batch *b, const struct op *ops)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, PV_NFT_TABLE) ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "forward"))
		goto oom;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_BRIDGE);
	for (const struct op *o = ops; o->kind != OP_END; o++) {
		struct nftnl_expr *e = op_expr(o);
		if (!e)
			goto oom;
		nftnl_rule_add_expr(r, e);
	}
	struct nlmsghdr *h = batch_msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, MSG_ROOM);
	if (h) {
		nftnl_rule_nlmsg_build_payload(h, r);
		batch_done_msg(b, h);
	}
	nftnl_rule_free(r);
	return;
oom:
	nftnl_rule_free(r);
	b->err = -ENOMEM;
}

static void put_table(struct batch *b, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, PV_NFT_TABLE)) {
		nftnl_table_free(t);
		b->err = -ENOMEM;
		return;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	struct nlmsghdr *h = batch_msg(b, type, flags, MSG_ROOM);
	if (h) {
		nftnl_table_nlmsg_build_payload(h, t);
		batch_done_msg(b, h);
	}
	nftnl_table_free(t);
}

static void put_set(struct batch *b, int s)
{
	const struct setdef *d = &SETS[s];
	struct nftnl_set *set = nftnl_set_alloc();
	if (!set || nftnl_set_set_str(set, NFTNL_SET_TABLE, PV_NFT_TABLE) ||
	    nftnl_set_set_str(set, NFTNL_SET_NAME, d->name)) {
		nftnl_set_free(set);
		b->err = -ENOMEM;
		return;
	}
	nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_BRIDGE);
	nftnl_set_set_u32(set, NFTNL_SET_ID, (uint32_t)s + 1);
	nftnl_set_set_u32(set, NFTNL_SET_FLAGS, d->flags);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, d->ktype);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, d->klen);
	if (d->flags & NFT_SET_MAP) {
		nftnl_set_set_u32(set, NFTNL_SET_DATA_TYPE, d->dtype);
		nftnl_set_set_u32(set, NFTNL_SET_DATA_LEN, d->dlen);
		/* without it `nft list` shows 1:10 byte-swapped as 1000:100 */
		struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(64);
		if (!ud ||
		    !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_HOST) ||
		    nftnl_set_set_data(set, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
				       nftnl_udata_buf_len(ud)))
			b->err = -ENOMEM;
		nftnl_udata_buf_free(ud);
	}
	struct nlmsghdr *h = batch_msg(b, NFT_MSG_NEWSET, NLM_F_CREATE, MSG_ROOM);
	if (h) {
		nftnl_set_nlmsg_build_payload(h, set);
		batch_done_msg(b, h);
	}
	nftnl_set_free(set);
}

static void put_chain(struct batch *b)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, PV_NFT_TABLE) ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "forward") ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter")) {
		nftnl_chain_free(c);
		b->err = -ENOMEM;
		return;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_BR_FORWARD_HOOK);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	struct nlmsghdr *h = batch_msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, MSG_ROOM);
	if (h) {
		nftnl_chain_nlmsg_build_payload(h, c);
		batch_done_msg(b, h);
	}
	nftnl_chain_free(c);
}

/* One NEWSETELEM/DELSETELEM message per ELEMS_PER_MSG elements. */
static void put_elems(struct batch *b, int s, uint16_t type, const struct chglist *l)
{
	const struct setdef *d = &SETS[s];
	for (size_t i = 0; i < l->n && !b->err; i += ELEMS_PER_MSG) {
		size_t m = l->n - i < ELEMS_PER_MSG ? l->n - i : ELEMS_PER_MSG;
		struct nftnl_set *set = nftnl_set_alloc();
		if (!set || nftnl_set_set_str(set, NFTNL_SET_TABLE, PV_NFT_TABLE) ||
		    nftnl_set_set_str(set, NFTNL_SET_NAME, d->name))
			goto oom;
		for (size_t j = i; j < i + m; j++) {
			struct nftnl_set_elem *e = nftnl_set_elem_alloc();
			if (!e)
				goto oom;
			nftnl_set_elem_add(set, e);
			if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, l->c[j].key, d->klen) < 0)
				goto oom;
			if (type == NFT_MSG_NEWSETELEM && (d->flags & NFT_SET_MAP) &&
			    nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &l->c[j].val, d->dlen) < 0)
				goto oom;
		}
		struct nlmsghdr *h =
		    batch_msg(b, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0,
			      MSG_ROOM + m * ELEM_ROOM);
		if (h) {
			nftnl_set_elems_nlmsg_build_payload(h, set);
			batch_done_msg(b, h);
		}
		nftnl_set_free(set);
		continue;
	oom:
		nftnl_set_free(set);
		b->err = -ENOMEM;
	}
}

/* ---- open / close ---- */

static int sock_open(struct pv_nft *n)
{
	n->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!n->nl)
		return -errno;
	if (mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return -errno;
	n->portid = mnl_socket_get_portid(n->nl);
	/* error replies would otherwise echo a whole batch message back */
	int one = 1;
	mnl_socket_setsockopt(n->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	socklen_t sl = sizeof(n->sndbuf);
	if (getsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_SNDBUF, &n->sndbuf, &sl))
		return -errno;
	/* the kernel reports the doubled value; keep a conservative half */
	n->sndbuf /= 2;
	return 0;
}

static int create_ruleset(struct pv_nft *n)
{
	struct batch b;
	batch_start(&b, n);
	/* add + delete + add replaces a leftover table atomically, or makes it */
	put_table(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	put_table(&b, NFT_MSG_DELTABLE, 0);
	put_table(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	for (int s = 0; s < S_COUNT; s++)
		put_set(&b, s);
	put_chain(&b);
	for (size_t i = 0; i < sizeof(RULES) / sizeof(RULES[0]); i++)
		put_rule(&b, RULES[i]);
	batch_end(&b);
	return batch_send(&b);
}

int pv_nft_open(struct pv_nft **out, struct pv_err *err)
{
	*out = NULL;
	struct pv_nft *n = calloc(1, sizeof(*n));
	if (!n)
		return pv_err_set(err, ENOMEM, "nft: out of memory opening table bridge %s",
				  PV_NFT_TABLE);
	n->seq = (uint32_t)time(NULL);
	n->gen = 1;
	int ret = sock_open(n);
	if (ret) {
		pv_nft_close(n, 0);
		return pv_err_set(err, -ret, "nft: cannot open a netfilter netlink socket: %s",
				  strerror(-ret));
	}
	ret = create_ruleset(n);
	if (ret) {
		pv_nft_close(n, 0);
		return pv_err_set(
		    err, -ret,
		    "nft: creating table bridge %s failed: %s; it needs CAP_NET_ADMIN "
		    "in this network namespace and nf_tables with the bridge family",
		    PV_NFT_TABLE, strerror(-ret));
	}
	*out = n;
	return 0;
}

void pv_nft_close(struct pv_nft *n, int destroy)
{
	if (!n)
		return;
	if (destroy && n->nl) {
		struct batch b;
		batch_start(&b, n);
		put_table(&b, NFT_MSG_DELTABLE, 0);
		batch_end(&b);
		(void)batch_send(&b); /* nothing to do about a table already gone */
	}
	if (n->nl)
		mnl_socket_close(n->nl);
	for (int s = 0; s < S_COUNT; s++) {
		free(n->cur[s].e);
		free(n->pending[s].e);
		free(n->add[s].c);
		free(n->del[s].c);
	}
	free(n->buf);
	free(n);
}

/* ---- apply ---- */

/* An ifname key field: the name NUL-padded to 16 bytes, as meta iifname
 * loads it into a register. */
static bool put_name(uint8_t *dst, const char *name)
{
	size_t l = strnlen(name, IFNAME_LEN);
	if (l == 0 || l == IFNAME_LEN)
		return false;
	memcpy(dst, name, l);
	memset(dst + l, 0, IFNAME_LEN - l);
	return true;
}

/* One wanted element: unchanged, changed (map value), or new. */
static int want_one(struct pv_nft *n, int s, const uint8_t *k, uint32_t val)
{
	struct ent *e = tab_find(&n->cur[s], k, 0);
	if (e) {
		if (e->mark == n->gen)
			return 0; /* a duplicate in `want`: the first one counts */
		e->mark = n->gen;
		if (e->val == val)
			return 0;
		int ret = chg_push(&n->del[s], k, e->val);
		return ret ? ret : chg_push(&n->add[s], k, val);
	}
	struct tab *p = &n->pending[s];
	if (tab_find(p, k, n->gen))
		return 0;
	int ret = tab_reserve(p, n->add[s].n + 1, n->gen);
	if (ret)
		return ret;
	tab_put(p, k, val, n->gen, n->gen);
	return chg_push(&n->add[s], k, val);
}

static const char *const WHAT[S_COUNT] = {
    [S_DROP] = "drop pair",
    [S_ISOLATED] = "isolated port",
    [S_ONEWAY] = "one-way pair",
    [S_PRIO] = "prio entry",
};

static int bad_name(struct pv_err *err, int s, size_t i)
{
	return pv_err_set(err, EINVAL,
			  "nft: %s #%zu has an empty or unterminated port name; use the bridge "
			  "port's interface name (1 to 15 characters)",
			  WHAT[s], i);
}

static int want_pairs(struct pv_nft *n, int s, const struct pv_nft_pair *p, size_t cnt,
		      struct pv_err *err)
{
	uint8_t k[2 * IFNAME_LEN];
	for (size_t i = 0; i < cnt; i++) {
		if (!put_name(k, p[i].in) || !put_name(k + IFNAME_LEN, p[i].out))
			return bad_name(err, s, i);
		int ret = want_one(n, s, k, 0);
		if (ret)
			return ret;
	}
	return 0;
}

static int want_all(struct pv_nft *n, const struct pv_nft_state *w, struct pv_err *err)
{
	int ret = want_pairs(n, S_DROP, w->drop, w->n_drop, err);
	if (!ret)
		ret = want_pairs(n, S_ONEWAY, w->oneway, w->n_oneway, err);
	uint8_t k[2 * IFNAME_LEN] = {0};
	for (size_t i = 0; !ret && i < w->n_isolated; i++) {
		if (!put_name(k, w->isolated[i]))
			return bad_name(err, S_ISOLATED, i);
		ret = want_one(n, S_ISOLATED, k, 0);
	}
	for (size_t i = 0; !ret && i < w->n_prio; i++) {
		const struct pv_nft_prio *p = &w->prio[i];
		if (!put_name(k, p->pair.in) || !put_name(k + IFNAME_LEN, p->pair.out))
			return bad_name(err, S_PRIO, i);
		ret = want_one(n, S_PRIO, k, p->classid);
	}
	return ret;
}

/* Everything recorded that `want` did not mention goes away. */
static int collect_deletions(struct pv_nft *n, int s)
{
	const struct tab *t = &n->cur[s];
	for (size_t i = 0; i < t->cap; i++)
		if (t->e[i].mark && t->e[i].mark != n->gen) {
			int ret = chg_push(&n->del[s], t->e[i].key, t->e[i].val);
			if (ret)
				return ret;
		}
	return 0;
}

static void commit_record(struct pv_nft *n)
{
	for (int s = 0; s < S_COUNT; s++) {
		struct tab *t = &n->cur[s];
		for (size_t i = 0; i < n->del[s].n; i++)
			tab_del(t, tab_find(t, n->del[s].c[i].key, 0));
		for (size_t i = 0; i < n->add[s].n; i++)
			tab_put(t, n->add[s].c[i].key, n->add[s].c[i].val, n->gen, 0);
	}
}

/* After 2^32 applies a stale mark could equal the new generation: restart
 * the numbering with every live record entry at 1 and empty scratch tables. */
static void renumber(struct pv_nft *n)
{
	for (int s = 0; s < S_COUNT; s++) {
		for (size_t i = 0; i < n->cur[s].cap; i++)
			if (n->cur[s].e[i].mark)
				n->cur[s].e[i].mark = 1;
		if (n->pending[s].cap)
			memset(n->pending[s].e, 0, n->pending[s].cap * sizeof(struct ent));
	}
	n->gen = 2;
}

static void next_gen(struct pv_nft *n)
{
	if (++n->gen == 0)
		renumber(n);
	for (int s = 0; s < S_COUNT; s++) {
		n->add[s].n = n->del[s].n = 0;
		n->pending[s].n = 0; /* the new generation empties it */
	}
}

int pv_nft_apply(struct pv_nft *n, const struct pv_nft_state *want, struct pv_err *err)
{
	next_gen(n);
	int ret = want_all(n, want, err);
	size_t changes = 0;
	for (int s = 0; !ret && s < S_COUNT; s++) {
		ret = collect_deletions(n, s);
		changes += n->add[s].n + n->del[s].n;
		/* room for the additions now, so recording success cannot fail */
		if (!ret)
			ret = tab_reserve(&n->cur[s], n->cur[s].n + n->add[s].n, 0);
	}
	if (ret == -EINVAL)
		return ret; /* bad_name said which input */
	if (ret)
		return pv_err_set(err, -ret, "nft: preparing the change failed: %s",
				  strerror(-ret));
	if (!changes)
		return 0;
	struct batch b;
	batch_start(&b, n);
	/* deletions first: a changed prio entry is deleted, then added again */
	for (int s = 0; s < S_COUNT; s++)
		put_elems(&b, s, NFT_MSG_DELSETELEM, &n->del[s]);
	for (int s = 0; s < S_COUNT; s++)
		put_elems(&b, s, NFT_MSG_NEWSETELEM, &n->add[s]);
	batch_end(&b);
	ret = batch_send(&b);
	if (ret)
		return pv_err_set(err, -ret,
				  "nft: applying %zu set changes to table bridge %s failed: %s; "
				  "nothing changed (was the table deleted? reopen it)",
				  changes, PV_NFT_TABLE, strerror(-ret));
	commit_record(n);
	return 0;
}
