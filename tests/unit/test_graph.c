/* Unit tests of the lab graph (netcore/graph.h): names, ids, addresses,
 * MACs, NIC indexes, partitions, cloning. No kernel. */
/* cmocka.h needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netcore/graph.h"

#define MAC_PREFIX 0x123456u

/* Every failure leaves the errno and a non-empty, one-line message. */
static void assert_err(const struct pv_err *e, int code)
{
	assert_int_equal(e->code, code);
	assert_true(e->msg[0] != '\0');
	assert_null(strchr(e->msg, '\n'));
}

#define OK(expr)                                                                        \
	do {                                                                            \
		pv_err_clear(&err);                                                     \
		int rc_ = (expr);                                                       \
		if (rc_)                                                                \
			fail_msg("%s gave %d: %s", #expr, rc_, err.msg);                \
	} while (0)

#define FAILS(expr, code)                                                               \
	do {                                                                            \
		pv_err_clear(&err);                                                     \
		int rc_ = (expr);                                                       \
		if (rc_ != -(code))                                                     \
			fail_msg("%s gave %d (%s), expected %d", #expr, rc_, err.msg,   \
				 -(code));                                              \
		assert_err(&err, code);                                                 \
	} while (0)

/* Attach or detach the blank-separated names in `list`. */
static int names_op(struct pv_graph *g, const char *bridge, const char *list, bool attach,
		    struct pv_err *err)
{
	char buf[256], *names[16], *save = NULL;
	size_t n = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *w = strtok_r(buf, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
		names[n++] = w;
	return attach ? pv_graph_attach(g, bridge, names, n, err)
		      : pv_graph_detach(g, bridge, names, n, err);
}

static int attach(struct pv_graph *g, const char *bridge, const char *list, struct pv_err *err)
{
	return names_op(g, bridge, list, true, err);
}

static int detach(struct pv_graph *g, const char *bridge, const char *list, struct pv_err *err)
{
	return names_op(g, bridge, list, false, err);
}

static struct pv_member *member(struct pv_graph *g, const char *bridge, const char *node)
{
	struct pv_bridge *b = pv_graph_bridge(g, bridge);
	struct pv_node *n = pv_graph_node(g, node);
	assert_non_null(b);
	assert_non_null(n);
	return pv_bridge_member(b, n->id);
}

static void boot(struct pv_graph *g, const char *node)
{
	struct pv_node *n = pv_graph_node(g, node);
	assert_non_null(n);
	pv_graph_set_state(g, n, PV_STATE_BOOTED);
}

/* A lab with netns nodes `nodes` and bridges `bridges` (blank-separated). */
static struct pv_graph *lab(const char *nodes, const char *bridges)
{
	struct pv_graph *g = pv_graph_new(MAC_PREFIX);
	struct pv_err err;
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", nodes);
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		OK(pv_graph_add_node(g, w, PV_NODE_NETNS, &err));
	snprintf(buf, sizeof(buf), "%s", bridges);
	save = NULL;
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		OK(pv_graph_add_bridge(g, w, &err));
	return g;
}

/* ---- names ---- */

static void test_name_valid(void **state)
{
	(void)state;
	const char *good[] = {"a", "0", "z9", "a-b_c", "9lives", "node-1", "a_", "a-",
			      "abcdefghijklmnopqrstuvwxyz012345"}; /* 32 */
	const char *bad[] = {"", "abcdefghijklmnopqrstuvwxyz0123456" /* 33 */, "A", "aB", "-a",
			     "_a", "..", ".", "a.b", "a/b", "/", "a b", "a\n", "a\tb", "é", "a:b",
			     "a*"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (!pv_name_valid(good[i]))
			fail_msg("`%s` should be a valid name", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (pv_name_valid(bad[i]))
			fail_msg("`%s` should be an invalid name", bad[i]);
}

static void test_invalid_names_refused(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "");
	struct pv_err err;
	FAILS(pv_graph_add_node(g, "..", PV_NODE_NETNS, &err), EINVAL);
	FAILS(pv_graph_add_node(g, "a/b", PV_NODE_QEMU, &err), EINVAL);
	FAILS(pv_graph_add_bridge(g, "LAN", &err), EINVAL);
	FAILS(pv_graph_add_bridge(g, "", &err), EINVAL);
	FAILS(pv_graph_add_bridge(g, "abcdefghijklmnopqrstuvwxyz0123456", &err), EINVAL);
	assert_int_equal(g->n_nodes, 0);
	assert_int_equal(g->n_bridges, 0);
	pv_graph_free(g);
}

static void test_reserved_names(void **state)
{
	(void)state;
	const char *reserved[] = {"ctl",   "errors", "features", "events", "metrics",
				  "state", "kind",   "profile",  "run"};
	struct pv_graph *g = lab("", "");
	struct pv_err err;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++) {
		FAILS(pv_graph_add_node(g, reserved[i], PV_NODE_NETNS, &err), EINVAL);
		assert_non_null(strstr(err.msg, reserved[i]));
		FAILS(pv_graph_add_bridge(g, reserved[i], &err), EINVAL);
	}
	assert_int_equal(g->n_nodes, 0);
	assert_int_equal(g->n_bridges, 0);
	/* only the exact names are reserved */
	OK(pv_graph_add_node(g, "ctl1", PV_NODE_NETNS, &err));
	OK(pv_graph_add_bridge(g, "running", &err));
	pv_graph_free(g);
}

static void test_shared_namespace(void **state)
{
	(void)state;
	struct pv_graph *g = lab("x", "y");
	struct pv_err err;
	FAILS(pv_graph_add_bridge(g, "x", &err), EEXIST);
	assert_non_null(strstr(err.msg, "x"));
	FAILS(pv_graph_add_node(g, "y", PV_NODE_QEMU, &err), EEXIST);
	FAILS(pv_graph_add_node(g, "x", PV_NODE_NETNS, &err), EEXIST);
	FAILS(pv_graph_add_bridge(g, "y", &err), EEXIST);
	assert_int_equal(g->n_nodes, 1);
	assert_int_equal(g->n_bridges, 1);
	/* the name frees up when its owner goes */
	OK(pv_graph_del_node(g, "x", &err));
	OK(pv_graph_add_bridge(g, "x", &err));
	pv_graph_free(g);
}

/* ---- nodes and bridges ---- */

static void test_nodes(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "");
	struct pv_err err;
	OK(pv_graph_add_node(g, "a", PV_NODE_NETNS, &err));
	OK(pv_graph_add_node(g, "vm", PV_NODE_QEMU, &err));
	struct pv_node *a = pv_graph_node(g, "a"), *vm = pv_graph_node(g, "vm");
	assert_int_equal(a->id, 1);
	assert_int_equal(vm->id, 2);
	assert_int_equal(a->state, PV_STATE_CREATED);
	assert_int_equal(vm->kind, PV_NODE_QEMU);
	assert_string_equal(a->profile, "netns");
	assert_string_equal(vm->profile, "default");
	assert_ptr_equal(pv_graph_node_by_id(g, 2), vm);
	assert_null(pv_graph_node_by_id(g, 3));
	assert_null(pv_graph_node(g, "b"));
	/* ids are never reused: port names stay unique */
	OK(pv_graph_del_node(g, "a", &err));
	OK(pv_graph_add_node(g, "a", PV_NODE_NETNS, &err));
	assert_int_equal(pv_graph_node(g, "a")->id, 3);
	FAILS(pv_graph_del_node(g, "nope", &err), ENOENT);
	assert_non_null(strstr(err.msg, "nope"));
	FAILS(pv_graph_del_node(g, "No/pe", &err), EINVAL);
	pv_graph_free(g);
}

static void test_node_up(void **state)
{
	(void)state;
	struct pv_node n = {.kind = PV_NODE_NETNS};
	enum pv_node_state s[] = {PV_STATE_CREATED, PV_STATE_BOOTING, PV_STATE_BOOTED,
				  PV_STATE_SHUTDOWN, PV_STATE_DEAD};
	bool netns_up[] = {false, false, true, false, false};
	bool vm_up[] = {false, true, true, false, false};
	for (size_t i = 0; i < 5; i++) {
		n.kind = PV_NODE_NETNS;
		n.state = s[i];
		assert_int_equal(pv_node_up(&n), netns_up[i]);
		n.kind = PV_NODE_QEMU;
		assert_int_equal(pv_node_up(&n), vm_up[i]);
	}
	assert_string_equal(pv_state_name(PV_STATE_BOOTED), "booted");
	assert_string_equal(pv_state_name(PV_STATE_DEAD), "dead");
	assert_string_equal(pv_kind_name(PV_NODE_NETNS), "netns");
	assert_string_equal(pv_kind_name(PV_NODE_QEMU), "qemu");
}

static void test_bridge_ids(void **state)
{
	(void)state;
	struct pv_graph *g = lab("n", "a b c");
	struct pv_err err;
	assert_int_equal(pv_graph_bridge(g, "a")->id, 1);
	assert_int_equal(pv_graph_bridge(g, "b")->id, 2);
	assert_int_equal(pv_graph_bridge(g, "c")->id, 3);
	/* the lowest free id is reused */
	OK(pv_graph_del_bridge(g, "b", &err));
	assert_null(pv_graph_bridge(g, "b"));
	OK(pv_graph_add_bridge(g, "d", &err));
	assert_int_equal(pv_graph_bridge(g, "d")->id, 2);
	OK(pv_graph_add_bridge(g, "e", &err));
	assert_int_equal(pv_graph_bridge(g, "e")->id, 4);
	OK(pv_graph_del_bridge(g, "a", &err));
	OK(pv_graph_add_bridge(g, "f", &err));
	assert_int_equal(pv_graph_bridge(g, "f")->id, 1);
	/* the id is the subnet: 10.77.<id>.0/24 */
	OK(attach(g, "d", "n", &err));
	char cidr[32], ip[32];
	struct pv_bridge *d = pv_graph_bridge(g, "d");
	pv_member_cidr(d, member(g, "d", "n"), cidr, sizeof(cidr));
	pv_member_ip(d, member(g, "d", "n"), ip, sizeof(ip));
	assert_string_equal(cidr, "10.77.2.2/24");
	assert_string_equal(ip, "10.77.2.2");
	FAILS(pv_graph_del_bridge(g, "zz", &err), ENOENT);
	assert_non_null(strstr(err.msg, "zz"));
	pv_graph_free(g);
}

static void test_bridge_limit(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "");
	struct pv_err err;
	char name[16];
	for (unsigned i = 1; i <= 255; i++) {
		snprintf(name, sizeof(name), "b%u", i);
		OK(pv_graph_add_bridge(g, name, &err));
		assert_int_equal(pv_graph_bridge(g, name)->id, i);
	}
	FAILS(pv_graph_add_bridge(g, "one-more", &err), ENOSPC);
	assert_int_equal(g->n_bridges, 255);
	OK(pv_graph_del_bridge(g, "b77", &err));
	OK(pv_graph_add_bridge(g, "one-more", &err));
	assert_int_equal(pv_graph_bridge(g, "one-more")->id, 77);
	pv_graph_free(g);
}

static void test_del_bridge_busy(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b", "lan");
	struct pv_err err;
	OK(attach(g, "lan", "a b", &err));
	FAILS(pv_graph_del_bridge(g, "lan", &err), EBUSY);
	assert_non_null(strstr(err.msg, "a b")); /* names the members */
	assert_non_null(strstr(err.msg, "detach"));
	assert_non_null(pv_graph_bridge(g, "lan"));
	OK(detach(g, "lan", "a b", &err));
	OK(pv_graph_del_bridge(g, "lan", &err));
	assert_int_equal(g->n_bridges, 0);
	pv_graph_free(g);
}

static void test_del_node_everywhere(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan wan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", &err));
	OK(attach(g, "wan", "b a", &err));
	OK(pv_graph_partition(g, "lan", "a", "c", false, true, &err));
	OK(pv_graph_partition(g, "lan", "b", "c", false, true, &err));
	OK(pv_graph_partition(g, "wan", "a", "b", false, true, &err));
	unsigned id = pv_graph_node(g, "a")->id;
	OK(pv_graph_del_node(g, "a", &err));
	assert_null(pv_graph_node(g, "a"));
	struct pv_bridge *lan = pv_graph_bridge(g, "lan"), *wan = pv_graph_bridge(g, "wan");
	assert_null(pv_bridge_member(lan, id));
	assert_null(pv_bridge_member(wan, id));
	assert_int_equal(lan->n_members, 2);
	assert_int_equal(wan->n_members, 1);
	assert_int_equal(lan->n_parts, 1);
	assert_string_equal(lan->parts[0].from, "b");
	assert_int_equal(wan->n_parts, 0);
	/* the bridges can go now that nothing names a */
	OK(detach(g, "wan", "b", &err));
	OK(pv_graph_del_bridge(g, "wan", &err));
	pv_graph_free(g);
}

/* ---- attach / detach ---- */

static void test_attach_validated_whole(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan");
	struct pv_err err;
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	FAILS(attach(g, "lan", "a zz b", &err), ENOENT);
	assert_non_null(strstr(err.msg, "zz"));
	assert_int_equal(lan->n_members, 0);
	FAILS(attach(g, "lan", "a b a", &err), EINVAL);
	assert_non_null(strstr(err.msg, "a"));
	assert_int_equal(lan->n_members, 0);
	FAILS(attach(g, "lan", "a B", &err), EINVAL);
	assert_int_equal(lan->n_members, 0);
	FAILS(attach(g, "lan", "", &err), EINVAL);
	FAILS(attach(g, "wan", "a", &err), ENOENT);
	assert_non_null(strstr(err.msg, "wan"));
	OK(attach(g, "lan", "a", &err));
	FAILS(attach(g, "lan", "b a", &err), EEXIST);
	assert_non_null(strstr(err.msg, "a"));
	assert_int_equal(lan->n_members, 1);
	assert_null(member(g, "lan", "b"));
	OK(attach(g, "lan", "c b", &err));
	assert_int_equal(lan->n_members, 3);
	struct pv_member *m = member(g, "lan", "c");
	assert_non_null(m);
	assert_true(m->link_up);
	assert_false(m->isolated);
	assert_int_equal(m->nic_index, -1);
	pv_graph_free(g);
}

static void test_detach_validated_whole(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan");
	struct pv_err err;
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	OK(attach(g, "lan", "a b", &err));
	FAILS(detach(g, "lan", "a c", &err), ENOENT); /* c is not attached */
	assert_non_null(strstr(err.msg, "c"));
	FAILS(detach(g, "lan", "a zz", &err), ENOENT);
	FAILS(detach(g, "lan", "a a", &err), EINVAL);
	FAILS(detach(g, "lan", "", &err), EINVAL);
	FAILS(detach(g, "wan", "a", &err), ENOENT);
	assert_int_equal(lan->n_members, 2);
	OK(detach(g, "lan", "b a", &err));
	assert_int_equal(lan->n_members, 0);
	pv_graph_free(g);
}

static void test_bridge_full(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "lan");
	struct pv_err err;
	char name[16];
	for (unsigned i = 0; i < 254; i++) {
		snprintf(name, sizeof(name), "n%u", i);
		OK(pv_graph_add_node(g, name, PV_NODE_NETNS, &err));
		if (i < 253)
			OK(attach(g, "lan", name, &err));
	}
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	assert_int_equal(lan->n_members, 253);
	assert_int_equal(member(g, "lan", "n252")->host, 254);
	FAILS(attach(g, "lan", "n253", &err), ENOSPC);
	assert_int_equal(lan->n_members, 253);
	OK(detach(g, "lan", "n100", &err));
	OK(attach(g, "lan", "n253", &err));
	assert_int_equal(member(g, "lan", "n253")->host, 102);
	pv_graph_free(g);
}

static void test_host_addresses(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c d e", "lan wan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", &err));
	assert_int_equal(member(g, "lan", "a")->host, 2);
	assert_int_equal(member(g, "lan", "b")->host, 3);
	assert_int_equal(member(g, "lan", "c")->host, 4);
	/* a freed address is the lowest free one and is handed out again */
	OK(detach(g, "lan", "b", &err));
	OK(attach(g, "lan", "d e", &err));
	assert_int_equal(member(g, "lan", "d")->host, 3);
	assert_int_equal(member(g, "lan", "e")->host, 5);
	OK(detach(g, "lan", "a c", &err));
	OK(attach(g, "lan", "b", &err));
	assert_int_equal(member(g, "lan", "b")->host, 2);
	/* every bridge counts on its own */
	OK(attach(g, "wan", "e", &err));
	assert_int_equal(member(g, "wan", "e")->host, 2);
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	for (size_t i = 0; i < lan->n_members; i++)
		for (size_t j = i + 1; j < lan->n_members; j++)
			assert_int_not_equal(lan->members[i].host, lan->members[j].host);
	pv_graph_free(g);
}

static void test_macs(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan wan dmz");
	struct pv_err err;
	uint8_t seen[16][6];
	size_t n = 0;
	const char *steps[][2] = {{"lan", "a b c"}, {"wan", "a b"}, {"dmz", "c"}};
	for (size_t s = 0; s < 3; s++)
		OK(attach(g, steps[s][0], steps[s][1], &err));
	/* detach and attach again: the NIC keeps its MAC, like a real one */
	uint8_t before[6];
	memcpy(before, member(g, "lan", "b")->mac, 6);
	OK(detach(g, "lan", "b", &err));
	OK(attach(g, "lan", "b", &err));
	assert_memory_equal(before, member(g, "lan", "b")->mac, 6);
	for (size_t i = 0; i < g->n_bridges; i++) {
		struct pv_bridge *b = &g->bridges[i];
		for (size_t j = 0; j < b->n_members; j++)
			memcpy(seen[n++], b->members[j].mac, 6);
	}
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(seen[i][0], 0x0a);
		assert_int_equal(seen[i][0] & 0x01, 0); /* unicast */
		assert_int_equal(seen[i][0] & 0x02, 0x02); /* locally administered */
		assert_int_equal(seen[i][1], 0x34); /* the daemon's 16 bits */
		assert_int_equal(seen[i][2], 0x56);
		for (size_t j = i + 1; j < n; j++)
			if (!memcmp(seen[i], seen[j], 6))
				fail_msg("MAC %zu and %zu are the same", i, j);
	}
	/* node id and bridge id are the last three bytes */
	struct pv_member *m = member(g, "wan", "b");
	assert_int_equal(m->mac[3] << 8 | m->mac[4], pv_graph_node(g, "b")->id);
	assert_int_equal(m->mac[5], pv_graph_bridge(g, "wan")->id);
	char text[18];
	uint8_t mac[6] = {0x0a, 0x12, 0x34, 0x56, 0x00, 0xff};
	pv_mac_format(mac, text);
	assert_string_equal(text, "0a:12:34:56:00:ff");
	pv_graph_free(g);
}

/* ---- NIC indexes ---- */

static void assert_nics(struct pv_graph *g, const char *node, const char *bridges,
			const int *want)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", bridges);
	size_t i = 0;
	for (char *b = strtok_r(buf, " ", &save); b; b = strtok_r(NULL, " ", &save), i++) {
		struct pv_member *m = member(g, b, node);
		assert_non_null(m);
		if (m->nic_index != want[i])
			fail_msg("%s on %s: eth%d, expected %d", node, b, m->nic_index, want[i]);
	}
}

static void test_nic_indexes(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "wan lan dmz");
	struct pv_err err;
	OK(pv_graph_add_node(g, "vm", PV_NODE_QEMU, &err));
	struct pv_node *vm = pv_graph_node(g, "vm");
	OK(attach(g, "wan", "vm", &err));
	OK(attach(g, "lan", "vm", &err));
	OK(attach(g, "dmz", "vm", &err));
	assert_nics(g, "vm", "wan lan dmz", (int[]){-1, -1, -1});
	/* coming up: bridge-name order, not attach or creation order */
	pv_graph_set_state(g, vm, PV_STATE_BOOTING);
	assert_nics(g, "vm", "dmz lan wan", (int[]){0, 1, 2});
	/* booting -> booted is still up: nothing moves */
	pv_graph_set_state(g, vm, PV_STATE_BOOTED);
	assert_nics(g, "vm", "dmz lan wan", (int[]){0, 1, 2});
	/* hot attach takes the lowest free index */
	OK(pv_graph_add_bridge(g, "aaa", &err));
	OK(attach(g, "aaa", "vm", &err));
	assert_nics(g, "vm", "aaa", (int[]){3});
	OK(detach(g, "lan", "vm", &err));
	OK(pv_graph_add_bridge(g, "zzz", &err));
	OK(attach(g, "zzz", "vm", &err));
	assert_nics(g, "vm", "zzz dmz wan aaa", (int[]){1, 0, 2, 3});
	/* down clears every index */
	pv_graph_set_state(g, vm, PV_STATE_SHUTDOWN);
	assert_nics(g, "vm", "aaa dmz wan zzz", (int[]){-1, -1, -1, -1});
	OK(attach(g, "lan", "vm", &err)); /* attached while down: no index */
	assert_nics(g, "vm", "lan", (int[]){-1});
	pv_graph_set_state(g, vm, PV_STATE_BOOTING);
	assert_nics(g, "vm", "aaa dmz lan wan zzz", (int[]){0, 1, 2, 3, 4});
	pv_graph_set_state(g, vm, PV_STATE_DEAD);
	assert_nics(g, "vm", "aaa dmz lan wan zzz", (int[]){-1, -1, -1, -1, -1});
	pv_graph_free(g);
}

static void test_nic_indexes_netns(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b", "y x");
	struct pv_err err;
	OK(attach(g, "y", "a b", &err));
	OK(attach(g, "x", "a", &err));
	struct pv_node *a = pv_graph_node(g, "a");
	pv_graph_set_state(g, a, PV_STATE_BOOTING); /* a netns node is not up yet */
	assert_nics(g, "a", "x y", (int[]){-1, -1});
	pv_graph_set_state(g, a, PV_STATE_BOOTED);
	assert_nics(g, "a", "x y", (int[]){0, 1});
	assert_nics(g, "b", "y", (int[]){-1}); /* other nodes are untouched */
	boot(g, "b");
	assert_nics(g, "b", "y", (int[]){0});
	pv_graph_set_state(g, a, PV_STATE_SHUTDOWN);
	assert_nics(g, "a", "x y", (int[]){-1, -1});
	assert_nics(g, "b", "y", (int[]){0});
	pv_graph_free(g);
}

/* ---- partitions ---- */

static void test_partition_symmetric(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b", "lan");
	struct pv_err err;
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	OK(pv_graph_partition(g, "lan", "b", "a", false, true, &err));
	assert_int_equal(lan->n_parts, 1);
	assert_string_equal(lan->parts[0].from, "a"); /* stored sorted */
	assert_string_equal(lan->parts[0].to, "b");
	assert_false(lan->parts[0].directional);
	assert_true(pv_bridge_partitioned(lan, "a", "b"));
	assert_true(pv_bridge_partitioned(lan, "b", "a"));
	/* adding it again, either way round, is a no-op */
	OK(pv_graph_partition(g, "lan", "a", "b", false, true, &err));
	OK(pv_graph_partition(g, "lan", "b", "a", false, true, &err));
	assert_int_equal(lan->n_parts, 1);
	/* names need not exist (nor be attached) yet */
	OK(pv_graph_partition(g, "lan", "later", "a", false, true, &err));
	assert_int_equal(lan->n_parts, 2);
	assert_true(pv_bridge_partitioned(lan, "later", "a"));
	assert_false(pv_bridge_partitioned(lan, "later", "b"));
	FAILS(pv_graph_partition(g, "lan", "a", "a", false, true, &err), EINVAL);
	assert_non_null(strstr(err.msg, "itself"));
	FAILS(pv_graph_partition(g, "lan", "a", "Bad", false, true, &err), EINVAL);
	FAILS(pv_graph_partition(g, "lan", "..", "a", false, true, &err), EINVAL);
	FAILS(pv_graph_partition(g, "wan", "a", "b", false, true, &err), ENOENT);
	assert_int_equal(lan->n_parts, 2);
	/* lifting: either order, and lifting a missing one is a no-op */
	OK(pv_graph_partition(g, "lan", "b", "a", false, false, &err));
	assert_false(pv_bridge_partitioned(lan, "a", "b"));
	OK(pv_graph_partition(g, "lan", "b", "a", false, false, &err));
	OK(pv_graph_partition(g, "lan", "x", "y", false, false, &err));
	assert_int_equal(lan->n_parts, 1);
	pv_graph_free(g);
}

static void test_partition_directional(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan");
	struct pv_err err;
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	OK(attach(g, "lan", "a b", &err));
	/* attached but not up */
	FAILS(pv_graph_partition(g, "lan", "a", "b", true, true, &err), ENOENT);
	assert_non_null(strstr(err.msg, "attach"));
	assert_non_null(strstr(err.msg, "a"));
	boot(g, "a");
	FAILS(pv_graph_partition(g, "lan", "a", "b", true, true, &err), ENOENT);
	assert_non_null(strstr(err.msg, "attach"));
	assert_non_null(strstr(err.msg, "`b`"));
	/* up but not attached */
	boot(g, "c");
	FAILS(pv_graph_partition(g, "lan", "a", "c", true, true, &err), ENOENT);
	assert_non_null(strstr(err.msg, "attach"));
	assert_non_null(strstr(err.msg, "`c`"));
	FAILS(pv_graph_partition(g, "lan", "zz", "a", true, true, &err), ENOENT);
	FAILS(pv_graph_partition(g, "lan", "a", "a", true, true, &err), EINVAL);
	assert_int_equal(lan->n_parts, 0);

	boot(g, "b");
	OK(pv_graph_partition(g, "lan", "b", "a", true, true, &err));
	assert_int_equal(lan->n_parts, 1);
	assert_string_equal(lan->parts[0].from, "b"); /* not reordered */
	assert_string_equal(lan->parts[0].to, "a");
	assert_true(lan->parts[0].directional);
	assert_true(pv_bridge_partitioned(lan, "b", "a"));
	assert_false(pv_bridge_partitioned(lan, "a", "b"));
	OK(pv_graph_partition(g, "lan", "b", "a", true, true, &err));
	assert_int_equal(lan->n_parts, 1);
	/* a symmetric one on the same pair is a separate entry */
	OK(pv_graph_partition(g, "lan", "a", "b", false, true, &err));
	assert_int_equal(lan->n_parts, 2);
	assert_true(pv_bridge_partitioned(lan, "a", "b"));
	/* lifting the opposite direction, which does not exist, is a no-op */
	OK(pv_graph_partition(g, "lan", "a", "b", true, false, &err));
	assert_int_equal(lan->n_parts, 2);
	OK(pv_graph_partition(g, "lan", "a", "b", false, false, &err));
	assert_true(pv_bridge_partitioned(lan, "b", "a"));
	assert_false(pv_bridge_partitioned(lan, "a", "b"));
	OK(pv_graph_partition(g, "lan", "b", "a", true, false, &err));
	assert_int_equal(lan->n_parts, 0);
	/* lifting needs no live endpoints */
	OK(pv_graph_partition(g, "lan", "a", "zz", true, false, &err));
	pv_graph_free(g);
}

static void test_partition_all_none(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c d", "lan wan");
	struct pv_err err;
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	OK(attach(g, "lan", "c a b", &err));
	OK(attach(g, "wan", "d", &err));
	OK(pv_graph_partition(g, "lan", "b", "a", false, true, &err));
	OK(pv_graph_partition_all(g, "lan", &err));
	lan = pv_graph_bridge(g, "lan");
	assert_int_equal(lan->n_parts, 3); /* no duplicate of a-b */
	assert_true(pv_bridge_partitioned(lan, "a", "b"));
	assert_true(pv_bridge_partitioned(lan, "c", "a"));
	assert_true(pv_bridge_partitioned(lan, "b", "c"));
	assert_false(pv_bridge_partitioned(lan, "a", "d"));
	assert_int_equal(pv_graph_bridge(g, "wan")->n_parts, 0);
	OK(pv_graph_partition_all(g, "lan", &err));
	assert_int_equal(lan->n_parts, 3);
	OK(pv_graph_partition_all(g, "wan", &err)); /* one member: no pairs */
	assert_int_equal(pv_graph_bridge(g, "wan")->n_parts, 0);

	boot(g, "a");
	boot(g, "b");
	OK(pv_graph_partition(g, "lan", "a", "b", true, true, &err));
	OK(pv_graph_partition(g, "lan", "x", "y", false, true, &err));
	assert_int_equal(lan->n_parts, 5);
	OK(pv_graph_partition_none(g, "lan", &err));
	assert_int_equal(lan->n_parts, 0);
	assert_false(pv_bridge_partitioned(lan, "a", "b"));
	FAILS(pv_graph_partition_all(g, "nope", &err), ENOENT);
	FAILS(pv_graph_partition_none(g, "nope", &err), ENOENT);
	pv_graph_free(g);
}

static void test_detach_lifts_partitions(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan wan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", &err));
	OK(attach(g, "wan", "a b", &err));
	boot(g, "a");
	boot(g, "c");
	OK(pv_graph_partition(g, "lan", "a", "b", false, true, &err));
	OK(pv_graph_partition(g, "lan", "c", "a", true, true, &err));
	OK(pv_graph_partition(g, "lan", "a", "c", true, true, &err));
	OK(pv_graph_partition(g, "lan", "b", "c", false, true, &err));
	OK(pv_graph_partition(g, "wan", "a", "b", false, true, &err));
	OK(pv_graph_isolate(g, "lan", "a", true, &err));
	OK(pv_graph_set_link(g, "a", "lan", false, &err));
	OK(detach(g, "lan", "a", &err));
	struct pv_bridge *lan = pv_graph_bridge(g, "lan");
	assert_int_equal(lan->n_parts, 1);
	assert_string_equal(lan->parts[0].from, "b");
	assert_string_equal(lan->parts[0].to, "c");
	assert_false(pv_bridge_partitioned(lan, "a", "b"));
	assert_false(pv_bridge_partitioned(lan, "c", "a"));
	/* other bridges keep theirs */
	assert_true(pv_bridge_partitioned(pv_graph_bridge(g, "wan"), "a", "b"));
	/* attached again: a fresh port, not isolated, link up */
	OK(attach(g, "lan", "a", &err));
	struct pv_member *m = member(g, "lan", "a");
	assert_false(m->isolated);
	assert_true(m->link_up);
	assert_int_equal(lan->n_parts, 1);
	pv_graph_free(g);
}

/* ---- isolation and link ---- */

static void test_isolate_and_link(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b", "lan");
	struct pv_err err;
	OK(attach(g, "lan", "a", &err));
	OK(pv_graph_isolate(g, "lan", "a", true, &err));
	assert_true(member(g, "lan", "a")->isolated);
	OK(pv_graph_isolate(g, "lan", "a", true, &err));
	OK(pv_graph_isolate(g, "lan", "a", false, &err));
	assert_false(member(g, "lan", "a")->isolated);
	FAILS(pv_graph_isolate(g, "lan", "b", true, &err), ENOENT);
	assert_non_null(strstr(err.msg, "attach"));
	FAILS(pv_graph_isolate(g, "lan", "zz", true, &err), ENOENT);
	FAILS(pv_graph_isolate(g, "wan", "a", true, &err), ENOENT);
	FAILS(pv_graph_isolate(g, "lan", "A", true, &err), EINVAL);
	OK(pv_graph_set_link(g, "a", "lan", false, &err));
	assert_false(member(g, "lan", "a")->link_up);
	OK(pv_graph_set_link(g, "a", "lan", true, &err));
	assert_true(member(g, "lan", "a")->link_up);
	FAILS(pv_graph_set_link(g, "b", "lan", false, &err), ENOENT);
	FAILS(pv_graph_set_link(g, "a", "wan", false, &err), ENOENT);
	pv_graph_free(g);
}

/* ---- kernel names ---- */

static void test_ifnames(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "lan abcdefghijkl abcdefghijklm");
	char out[16];
	pv_bridge_ifname(pv_graph_bridge(g, "lan"), out);
	assert_string_equal(out, "br-lan");
	pv_bridge_ifname(pv_graph_bridge(g, "abcdefghijkl"), out); /* 12: fits IFNAMSIZ */
	assert_string_equal(out, "br-abcdefghijkl");
	pv_bridge_ifname(pv_graph_bridge(g, "abcdefghijklm"), out); /* 13: too long */
	assert_string_equal(out, "br3");
	struct pv_bridge longest = {.name = "abcdefghijklmnopqrstuvwxyz012345", .id = 255};
	pv_bridge_ifname(&longest, out);
	assert_string_equal(out, "br255");
	pv_port_ifname(3, 2, out);
	assert_string_equal(out, "p3-2");
	pv_port_ifname(4294967295u, 255, out);
	assert_string_equal(out, "p4294967295-255");
	pv_graph_free(g);
}

/* ---- cloning ---- */

static void test_clone_deep(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan wan empty");
	struct pv_err err;
	OK(attach(g, "lan", "a b", &err));
	OK(attach(g, "wan", "a", &err));
	OK(pv_graph_partition(g, "lan", "a", "b", false, true, &err));
	struct pv_graph *c = pv_graph_clone(g);
	assert_non_null(c);
	assert_ptr_not_equal(c->nodes, g->nodes);
	assert_ptr_not_equal(c->bridges, g->bridges);
	struct pv_bridge *glan = pv_graph_bridge(g, "lan"), *clan = pv_graph_bridge(c, "lan");
	assert_ptr_not_equal(clan->members, glan->members);
	assert_ptr_not_equal(clan->parts, glan->parts);
	assert_int_equal(clan->n_members, 2);
	assert_int_equal(clan->n_parts, 1);
	assert_int_equal(c->mac_prefix, g->mac_prefix);
	assert_int_equal(c->next_node_id, g->next_node_id);

	/* mutate the clone every way a write can */
	OK(attach(c, "lan", "c", &err));
	OK(pv_graph_partition(c, "lan", "a", "c", false, true, &err));
	OK(pv_graph_partition(c, "lan", "a", "b", false, false, &err));
	OK(pv_graph_isolate(c, "lan", "b", true, &err));
	OK(pv_graph_set_link(c, "a", "wan", false, &err));
	boot(c, "a");
	OK(pv_graph_add_node(c, "d", PV_NODE_QEMU, &err));
	OK(pv_graph_add_bridge(c, "dmz", &err));
	OK(attach(c, "empty", "b", &err));
	clan = pv_graph_bridge(c, "lan"); /* bridges may have moved */
	snprintf(clan->parts[0].from, sizeof(pv_name), "zz");
	clan->members[0].host = 99;

	glan = pv_graph_bridge(g, "lan");
	assert_int_equal(g->n_nodes, 3);
	assert_int_equal(g->n_bridges, 3);
	assert_int_equal(glan->n_members, 2);
	assert_int_equal(glan->n_parts, 1);
	assert_true(pv_bridge_partitioned(glan, "a", "b"));
	assert_false(pv_bridge_partitioned(glan, "a", "c"));
	assert_int_equal(member(g, "lan", "a")->host, 2);
	assert_false(member(g, "lan", "b")->isolated);
	assert_true(member(g, "wan", "a")->link_up);
	assert_int_equal(member(g, "lan", "a")->nic_index, -1);
	assert_int_equal(pv_graph_node(g, "a")->state, PV_STATE_CREATED);
	assert_int_equal(pv_graph_bridge(g, "empty")->n_members, 0);
	assert_null(pv_graph_bridge(g, "dmz"));
	assert_null(pv_graph_node(g, "d"));

	/* and the other way round: the original does not reach the clone */
	OK(detach(g, "lan", "a", &err));
	assert_int_equal(pv_graph_bridge(c, "lan")->n_members, 3);
	pv_graph_free(c);
	pv_graph_free(g);
}

static void test_clone_empty(void **state)
{
	(void)state;
	struct pv_graph *g = pv_graph_new(1);
	struct pv_graph *c = pv_graph_clone(g);
	struct pv_err err;
	assert_int_equal(c->n_nodes, 0);
	OK(pv_graph_add_node(c, "a", PV_NODE_NETNS, &err));
	assert_int_equal(g->n_nodes, 0);
	pv_graph_free(c);
	pv_graph_free(g);
	pv_graph_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_invalid_names_refused),
		cmocka_unit_test(test_reserved_names),
		cmocka_unit_test(test_shared_namespace),
		cmocka_unit_test(test_nodes),
		cmocka_unit_test(test_node_up),
		cmocka_unit_test(test_bridge_ids),
		cmocka_unit_test(test_bridge_limit),
		cmocka_unit_test(test_del_bridge_busy),
		cmocka_unit_test(test_del_node_everywhere),
		cmocka_unit_test(test_attach_validated_whole),
		cmocka_unit_test(test_detach_validated_whole),
		cmocka_unit_test(test_bridge_full),
		cmocka_unit_test(test_host_addresses),
		cmocka_unit_test(test_macs),
		cmocka_unit_test(test_nic_indexes),
		cmocka_unit_test(test_nic_indexes_netns),
		cmocka_unit_test(test_partition_symmetric),
		cmocka_unit_test(test_partition_directional),
		cmocka_unit_test(test_partition_all_none),
		cmocka_unit_test(test_detach_lifts_partitions),
		cmocka_unit_test(test_isolate_and_link),
		cmocka_unit_test(test_ifnames),
		cmocka_unit_test(test_clone_deep),
		cmocka_unit_test(test_clone_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
