/* Unit tests of the reconciler's plan (pv_plan_compute) and the hosts file
 * text (pv_hosts_render): what a graph implies, computed without a kernel. */
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
#include <stdlib.h>
#include <string.h>

#include "netcore/graph.h"
#include "netcore/reconcile.h"

#define OK(expr)                                                                        \
	do {                                                                            \
		pv_err_clear(&err);                                                     \
		int rc_ = (expr);                                                       \
		if (rc_)                                                                \
			fail_msg("%s gave %d: %s", #expr, rc_, err.msg);                \
	} while (0)

static int attach(struct pv_graph *g, const char *bridge, const char *list, bool on,
		  struct pv_err *err)
{
	char buf[256], *names[16], *save = NULL;
	size_t n = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *w = strtok_r(buf, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
		names[n++] = w;
	return on ? pv_graph_attach(g, bridge, names, n, err)
		  : pv_graph_detach(g, bridge, names, n, err);
}

static void set_state(struct pv_graph *g, const char *node, enum pv_node_state s)
{
	struct pv_node *n = pv_graph_node(g, node);
	assert_non_null(n);
	pv_graph_set_state(g, n, s);
}

/* Netns nodes `nodes`, bridges `bridges` (blank-separated, ids in order). */
static struct pv_graph *lab(const char *nodes, const char *bridges)
{
	struct pv_graph *g = pv_graph_new(0xabcdef);
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

static const struct pv_port_rec *port(const struct pv_plan *d, const char *ifname)
{
	for (size_t i = 0; i < d->n_ports; i++)
		if (!strcmp(d->ports[i].ifname, ifname))
			return &d->ports[i];
	return NULL;
}

static bool has_pair(const struct pv_nft_pair *p, size_t n, const char *in, const char *out)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].in, in) && !strcmp(p[i].out, out))
			return true;
	return false;
}

static bool has_name16(char (*list)[16], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

/* ---- pv_plan_compute ---- */

static void test_plan_empty(void **state)
{
	(void)state;
	struct pv_graph *g = pv_graph_new(1);
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_bridges, 0);
	assert_int_equal(d.n_ports, 0);
	assert_int_equal(d.n_netns, 0);
	assert_int_equal(d.n_drop, 0);
	assert_int_equal(d.n_oneway, 0);
	assert_int_equal(d.n_isolated, 0);
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_bridges(void **state)
{
	(void)state;
	struct pv_graph *g = lab("", "lan abcdefghijkl a-very-long-bridge");
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_bridges, 3);
	assert_string_equal(d.bridges[0], "br-lan");
	assert_string_equal(d.bridges[1], "br-abcdefghijkl");
	assert_string_equal(d.bridges[2], "br3"); /* too long for IFNAMSIZ */
	assert_int_equal(d.n_ports, 0);
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_ports(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b", "wan lan");
	struct pv_err err;
	OK(pv_graph_add_node(g, "vm", PV_NODE_QEMU, &err));
	OK(attach(g, "wan", "a b vm", true, &err));
	OK(attach(g, "lan", "a", true, &err));
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_bridges, 2);
	assert_int_equal(d.n_ports, 0); /* nothing is up */
	assert_int_equal(d.n_netns, 0);
	pv_plan_free(&d);

	set_state(g, "a", PV_STATE_BOOTED);
	set_state(g, "vm", PV_STATE_BOOTED);
	set_state(g, "b", PV_STATE_BOOTING); /* a netns node is not up yet */
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_netns, 1);
	assert_string_equal(d.netns_nodes[0], "a");
	assert_int_equal(d.n_ports, 2); /* a's two: no port for b, none for the VM */
	const struct pv_port_rec *w = port(&d, "p1-1"), *l = port(&d, "p1-2");
	assert_non_null(w);
	assert_non_null(l);
	assert_null(port(&d, "p2-1"));
	assert_null(port(&d, "p3-1"));
	assert_string_equal(w->master, "br-wan");
	assert_string_equal(l->master, "br-lan");
	assert_string_equal(w->node, "a");
	/* NICs in bridge-name order: lan is eth0 */
	assert_string_equal(l->peer_ifname, "eth0");
	assert_string_equal(w->peer_ifname, "eth1");
	assert_string_equal(w->cidr, "10.77.1.2/24");
	assert_string_equal(l->cidr, "10.77.2.2/24");
	struct pv_node *a = pv_graph_node(g, "a");
	struct pv_member *m = pv_bridge_member(pv_graph_bridge(g, "wan"), a->id);
	assert_memory_equal(w->mac, m->mac, 6);
	assert_true(w->up);
	pv_plan_free(&d);

	OK(pv_graph_set_link(g, "a", "wan", false, &err));
	set_state(g, "b", PV_STATE_BOOTED);
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_netns, 2);
	assert_int_equal(d.n_ports, 3);
	assert_false(port(&d, "p1-1")->up);
	assert_true(port(&d, "p1-2")->up);
	assert_string_equal(port(&d, "p2-1")->cidr, "10.77.1.3/24");
	assert_string_equal(port(&d, "p2-1")->peer_ifname, "eth0");
	pv_plan_free(&d);

	/* detached: no port left; down: no port, no namespace */
	OK(attach(g, "wan", "a", false, &err));
	set_state(g, "b", PV_STATE_SHUTDOWN);
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_ports, 1);
	assert_non_null(port(&d, "p1-2"));
	assert_int_equal(d.n_netns, 1);
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_isolated(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", true, &err));
	set_state(g, "a", PV_STATE_BOOTED);
	set_state(g, "b", PV_STATE_BOOTED);
	OK(pv_graph_isolate(g, "lan", "a", true, &err));
	OK(pv_graph_isolate(g, "lan", "c", true, &err)); /* c is down: no port */
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_isolated, 1);
	assert_string_equal(d.isolated[0], "p1-1");
	pv_plan_free(&d);
	OK(pv_graph_isolate(g, "lan", "a", false, &err));
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_isolated, 0);
	pv_plan_free(&d);
	pv_graph_free(g);
}

/* A VM's port takes part in partitions; isolation must reach it too. */
static void test_plan_isolated_vm(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a", "lan");
	struct pv_err err;
	OK(pv_graph_add_node(g, "vm", PV_NODE_QEMU, &err));
	OK(attach(g, "lan", "a vm", true, &err));
	set_state(g, "a", PV_STATE_BOOTED);
	set_state(g, "vm", PV_STATE_BOOTING);
	OK(pv_graph_partition(g, "lan", "a", "vm", false, true, &err));
	OK(pv_graph_isolate(g, "lan", "vm", true, &err));
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_ports, 1); /* QEMU makes its own TAP */
	assert_int_equal(d.n_drop, 2);
	assert_true(has_pair(d.drop, d.n_drop, "p1-1", "p2-1"));
	assert_true(has_pair(d.drop, d.n_drop, "p2-1", "p1-1"));
	assert_int_equal(d.n_isolated, 1);
	assert_true(has_name16(d.isolated, d.n_isolated, "p2-1"));
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_partitions(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c d", "lan wan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", true, &err));
	OK(attach(g, "wan", "a d", true, &err));
	for (const char *n = "abcd"; *n; n++)
		set_state(g, (char[]){*n, '\0'}, PV_STATE_BOOTED);
	OK(pv_graph_partition(g, "lan", "b", "a", false, true, &err));
	OK(pv_graph_partition(g, "lan", "c", "a", true, true, &err));
	OK(pv_graph_partition(g, "wan", "a", "d", true, true, &err));
	struct pv_plan d;
	pv_plan_compute(g, &d);
	/* symmetric: both (in, out) orders; directional: the one pair */
	assert_int_equal(d.n_drop, 2);
	assert_true(has_pair(d.drop, d.n_drop, "p1-1", "p2-1"));
	assert_true(has_pair(d.drop, d.n_drop, "p2-1", "p1-1"));
	assert_int_equal(d.n_oneway, 2);
	assert_true(has_pair(d.oneway, d.n_oneway, "p3-1", "p1-1"));
	assert_true(has_pair(d.oneway, d.n_oneway, "p1-2", "p4-2"));
	assert_false(has_pair(d.oneway, d.n_oneway, "p1-1", "p3-1"));
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_partitions_need_live_ports(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c d", "lan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", true, &err));
	set_state(g, "a", PV_STATE_BOOTED);
	set_state(g, "b", PV_STATE_BOOTED);
	set_state(g, "d", PV_STATE_BOOTED);
	OK(pv_graph_partition(g, "lan", "a", "c", false, true, &err));     /* c is down */
	OK(pv_graph_partition(g, "lan", "a", "d", false, true, &err));     /* d not attached */
	OK(pv_graph_partition(g, "lan", "a", "ghost", false, true, &err)); /* no such node */
	OK(pv_graph_partition(g, "lan", "a", "b", true, true, &err));
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_drop, 0);
	assert_int_equal(d.n_oneway, 1);
	pv_plan_free(&d);

	/* the partitions wait in the graph and apply once the ports exist */
	set_state(g, "c", PV_STATE_BOOTED);
	OK(attach(g, "lan", "d", true, &err));
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_drop, 4);
	assert_true(has_pair(d.drop, d.n_drop, "p1-1", "p3-1"));
	assert_true(has_pair(d.drop, d.n_drop, "p4-1", "p1-1"));
	pv_plan_free(&d);

	/* an endpoint going down takes its pairs out of the plan */
	set_state(g, "b", PV_STATE_SHUTDOWN);
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_oneway, 0);
	assert_int_equal(d.n_drop, 4);
	pv_plan_free(&d);

	/* a detached node leaves no port and no pair */
	OK(attach(g, "lan", "c", false, &err));
	pv_plan_compute(g, &d);
	assert_null(port(&d, "p3-1"));
	assert_int_equal(d.n_ports, 2);
	assert_int_equal(d.n_drop, 2);
	assert_false(has_pair(d.drop, d.n_drop, "p1-1", "p3-1"));
	pv_plan_free(&d);
	pv_graph_free(g);
}

static void test_plan_partition_all(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c", "lan");
	struct pv_err err;
	OK(attach(g, "lan", "a b c", true, &err));
	for (const char *n = "abc"; *n; n++)
		set_state(g, (char[]){*n, '\0'}, PV_STATE_BOOTED);
	OK(pv_graph_partition_all(g, "lan", &err));
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_drop, 6);
	for (unsigned i = 1; i <= 3; i++)
		for (unsigned j = 1; j <= 3; j++) {
			char in[16], out[16];
			pv_port_ifname(i, 1, in);
			pv_port_ifname(j, 1, out);
			assert_int_equal(has_pair(d.drop, d.n_drop, in, out), i != j);
		}
	pv_plan_free(&d);
	OK(pv_graph_partition_none(g, "lan", &err));
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_drop, 0);
	pv_plan_free(&d);
	pv_graph_free(g);
}

/* ---- pv_hosts_render ---- */

static void assert_line(const char *text, const char *line, bool present)
{
	char want[128];
	snprintf(want, sizeof(want), "\n%s\n", line);
	size_t n = strlen(text);
	char *padded = malloc(n + 3);
	assert_non_null(padded);
	snprintf(padded, n + 3, "\n%s\n", text);
	bool found = strstr(padded, want) != NULL;
	free(padded);
	if (found != present)
		fail_msg("line `%s` %s in:\n%s", line, present ? "missing" : "present", text);
}

static void test_hosts(void **state)
{
	(void)state;
	struct pv_graph *g = lab("a b c d e", "lan wan dmz");
	struct pv_err err;
	OK(attach(g, "lan", "a b", true, &err));
	OK(attach(g, "wan", "c a", true, &err));
	OK(attach(g, "dmz", "d c", true, &err));
	char *t = pv_hosts_render(g, pv_graph_node(g, "a"));
	assert_non_null(t);
	assert_line(t, "127.0.0.1\tlocalhost", true);
	assert_line(t, "127.0.1.1\ta", true);
	assert_line(t, "10.77.1.2\ta.lan", true);
	assert_line(t, "10.77.1.3\tb.lan", true);
	assert_line(t, "10.77.2.2\tc.wan", true);
	assert_line(t, "10.77.2.3\ta.wan", true);
	assert_null(strstr(t, ".dmz")); /* a is not on dmz */
	assert_null(strstr(t, "\td."));
	assert_null(strstr(t, "\te."));
	free(t);

	t = pv_hosts_render(g, pv_graph_node(g, "c"));
	assert_line(t, "10.77.2.2\tc.wan", true);
	assert_line(t, "10.77.2.3\ta.wan", true);
	assert_line(t, "10.77.3.2\td.dmz", true);
	assert_line(t, "10.77.3.3\tc.dmz", true);
	assert_null(strstr(t, ".lan"));
	free(t);

	/* on no bridge: only itself */
	t = pv_hosts_render(g, pv_graph_node(g, "e"));
	assert_line(t, "127.0.1.1\te", true);
	assert_null(strstr(t, "10.77."));
	free(t);

	/* a detach takes the names away on that bridge only */
	OK(attach(g, "wan", "a", false, &err));
	t = pv_hosts_render(g, pv_graph_node(g, "a"));
	assert_null(strstr(t, ".wan"));
	assert_line(t, "10.77.1.3\tb.lan", true);
	free(t);
	pv_graph_free(g);
}

static void test_netns_names(void **state)
{
	(void)state;
	char out[64];
	pv_lab_netns_name("lab1", out, sizeof(out));
	assert_string_equal(out, "pv-lab1");
	pv_node_netns_name("lab1", "a", out, sizeof(out));
	assert_string_equal(out, "pv-lab1.a");
	pv_node_hosts_path("/run/x", "a", out, sizeof(out));
	assert_string_equal(out, "/run/x/a.hosts");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_empty),
		cmocka_unit_test(test_plan_bridges),
		cmocka_unit_test(test_plan_ports),
		cmocka_unit_test(test_plan_isolated),
		cmocka_unit_test(test_plan_isolated_vm),
		cmocka_unit_test(test_plan_partitions),
		cmocka_unit_test(test_plan_partitions_need_live_ports),
		cmocka_unit_test(test_plan_partition_all),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_netns_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
