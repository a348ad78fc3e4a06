/* Impairments without a kernel: value and line parsers, the graph's rules
 * (per-pair entries, stable minors, detach, reset, reorder and duplicate
 * rules) and the reconciler's plan (per-port qdisc specs, the prio map). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "netcore/graph.h"
#include "netcore/impair.h"
#include "netcore/reconcile.h"

/* ---- values */

static uint64_t val(enum pv_imp_key k, const char *text, int *rc)
{
	struct pv_err e = {0};
	uint64_t v = 12345;
	*rc = pv_impair_parse_value(k, text, &v, &e);
	if (*rc)
		assert_true(e.msg[0] != '\0');
	return v;
}

static void test_values(void **state)
{
	(void)state;
	int rc;
	assert_int_equal(val(PV_IMP_LATENCY, "50\n", &rc), 50);
	assert_int_equal(rc, 0);
	assert_int_equal(val(PV_IMP_LATENCY, "60000", &rc), 60000);
	assert_int_equal(rc, 0);
	const char *bad_ms[] = {"-5", "60001", "1.5", "fast", "", " ", "5ms", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad_ms) / sizeof(*bad_ms); i++) {
		val(PV_IMP_LATENCY, bad_ms[i], &rc);
		assert_int_equal(rc, -EINVAL);
	}
	assert_int_equal(val(PV_IMP_DROP, "0.5", &rc), 5000);
	assert_int_equal(val(PV_IMP_DROP, "100", &rc), 1000000);
	assert_int_equal(val(PV_IMP_DROP, "0.0001", &rc), 1);
	assert_int_equal(val(PV_IMP_DROP, "12.25", &rc), 122500);
	assert_int_equal(rc, 0);
	const char *bad_pct[] = {"100.01", "-1", "0.00001", "5%", ".5", "5.", "1e2", "abc"};
	for (size_t i = 0; i < sizeof(bad_pct) / sizeof(*bad_pct); i++) {
		val(PV_IMP_CORRUPT, bad_pct[i], &rc);
		assert_int_equal(rc, -EINVAL);
	}
	assert_int_equal(val(PV_IMP_BANDWIDTH, "500000", &rc), 500000);
	assert_int_equal(val(PV_IMP_BANDWIDTH, "10M", &rc), 10000000);
	assert_int_equal(val(PV_IMP_BANDWIDTH, "100G", &rc), 100000000000ull);
	assert_int_equal(val(PV_IMP_BANDWIDTH, "0", &rc), 0);
	assert_int_equal(rc, 0);
	const char *bad_bps[] = {"7999", "1001G", "-1", "1.5M", "M", "10Mbit"};
	for (size_t i = 0; i < sizeof(bad_bps) / sizeof(*bad_bps); i++) {
		val(PV_IMP_BANDWIDTH, bad_bps[i], &rc);
		assert_int_equal(rc, -EINVAL);
	}
}

static void test_format(void **state)
{
	(void)state;
	char b[32];
	pv_impair_format_value(PV_IMP_DROP, 5000, b, sizeof(b));
	assert_string_equal(b, "0.5");
	pv_impair_format_value(PV_IMP_DROP, 1, b, sizeof(b));
	assert_string_equal(b, "0.0001");
	pv_impair_format_value(PV_IMP_DROP, 300000, b, sizeof(b));
	assert_string_equal(b, "30");
	pv_impair_format_value(PV_IMP_DROP, 122500, b, sizeof(b));
	assert_string_equal(b, "12.25");
	pv_impair_format_value(PV_IMP_BANDWIDTH, 6000000000ull, b, sizeof(b));
	assert_string_equal(b, "6000000000");
	pv_impair_format_value(PV_IMP_LATENCY, 0, b, sizeof(b));
	assert_string_equal(b, "0");
}

static void test_lines(void **state)
{
	(void)state;
	struct pv_impair_line l;
	struct pv_err e = {0};
	char s1[] = "a -> b latency_ms=50 drop_pct=1 bandwidth_bps=500000";
	assert_int_equal(pv_impair_parse_line(s1, &l, &e), 0);
	assert_string_equal(l.from, "a");
	assert_string_equal(l.to, "b");
	assert_false(l.clear);
	assert_int_equal(l.change.mask,
			 (1u << PV_IMP_LATENCY) | (1u << PV_IMP_DROP) | (1u << PV_IMP_BANDWIDTH));
	assert_int_equal(l.change.val.v[PV_IMP_DROP], 10000);
	char s2[] = "a -> b clear";
	assert_int_equal(pv_impair_parse_line(s2, &l, &e), 0);
	assert_true(l.clear);
	const char *bad[] = {"a -> b", "a b latency_ms=1", "a -> b speed=1", "a -> b latency_ms",
			     "a -> b latency_ms=1 latency_ms=2", "a -> b drop_pct=101",
			     "a -> b clear latency_ms=1", "-> b latency_ms=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char buf[128];
		snprintf(buf, sizeof(buf), "%s", bad[i]);
		assert_int_equal(pv_impair_parse_line(buf, &l, &e), -EINVAL);
	}
	struct pv_impair_change c = {.mask = 1u << PV_IMP_BANDWIDTH};
	c.val.v[PV_IMP_BANDWIDTH] = 1000000;
	assert_false(pv_impair_change_needs_netem(&c));
	c.mask |= 1u << PV_IMP_LATENCY; /* latency 0: off needs nothing */
	assert_false(pv_impair_change_needs_netem(&c));
	c.val.v[PV_IMP_LATENCY] = 5;
	assert_true(pv_impair_change_needs_netem(&c));
}

/* ---- graph */

static struct pv_graph *lab3(void)
{
	struct pv_graph *g = pv_graph_new(0x1234);
	struct pv_err e;
	assert_int_equal(pv_graph_add_bridge(g, "lan", &e), 0);
	char *names[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pv_graph_add_node(g, names[i], PV_NODE_NETNS, &e), 0);
		pv_graph_set_state(g, pv_graph_node(g, names[i]), PV_STATE_BOOTED);
	}
	assert_int_equal(pv_graph_attach(g, "lan", names, 3, &e), 0);
	return g;
}

static struct pv_impair_change one(enum pv_imp_key k, uint64_t v)
{
	struct pv_impair_change c = {.mask = 1u << k};
	c.val.v[k] = v;
	return c;
}

static void test_graph_pairs(void **state)
{
	(void)state;
	struct pv_graph *g = lab3();
	struct pv_err e;
	struct pv_impair_change c = one(PV_IMP_LATENCY, 50);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "b", &c, &e), 0);
	c = one(PV_IMP_DROP, 10000);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "b", &c, &e), 0);
	c = one(PV_IMP_BANDWIDTH, 1000000);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "c", "b", &c, &e), 0);
	const struct pv_bridge *b = pv_graph_bridge(g, "lan");
	const struct pv_pair_impair *ab = pv_bridge_impair_pair(b, "a", "b");
	assert_non_null(ab);
	/* a second write changes only its key */
	assert_int_equal(ab->im.v[PV_IMP_LATENCY], 50);
	assert_int_equal(ab->im.v[PV_IMP_DROP], 10000);
	uint16_t m_ab = ab->minor, m_cb = pv_bridge_impair_pair(b, "c", "b")->minor;
	assert_int_not_equal(m_ab, m_cb);
	assert_true(m_ab >= PV_QDISC_MINOR_MIN && m_ab <= PV_QDISC_MINOR_MAX);
	/* minors are stable: clearing a -> b keeps c -> b's */
	assert_int_equal(pv_graph_impair_clear(g, "lan", "a", "b", &e), 0);
	assert_int_equal(pv_graph_impair_clear(g, "lan", "a", "b", &e), 0); /* no-op */
	b = pv_graph_bridge(g, "lan");
	assert_null(pv_bridge_impair_pair(b, "a", "b"));
	assert_int_equal(pv_bridge_impair_pair(b, "c", "b")->minor, m_cb);
	/* errors */
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "a", &c, &e), -EINVAL);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "zz", &c, &e), -ENOENT);
	assert_int_equal(pv_graph_add_node(g, "d", PV_NODE_NETNS, &e), 0);
	pv_graph_set_state(g, pv_graph_node(g, "d"), PV_STATE_BOOTED);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "d", &c, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "attach first"));
	/* all keys back to zero: the entry goes */
	c = one(PV_IMP_BANDWIDTH, 0);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "c", "b", &c, &e), 0);
	assert_int_equal(pv_graph_bridge(g, "lan")->n_pairs, 0);
	pv_graph_free(g);
}

static void test_graph_detach_reset_clone(void **state)
{
	(void)state;
	struct pv_graph *g = lab3();
	struct pv_err e;
	struct pv_impair_change c = one(PV_IMP_BANDWIDTH, 1000000);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "b", &c, &e), 0);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "b", "c", &c, &e), 0);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "c", "a", &c, &e), 0);
	c = one(PV_IMP_LATENCY, 20);
	assert_int_equal(pv_graph_impair_bridge(g, "lan", &c, &e), 0);
	/* a clone is independent */
	struct pv_graph *k = pv_graph_clone(g);
	char *bn[] = {"b"};
	assert_int_equal(pv_graph_detach(k, "lan", bn, 1, &e), 0);
	const struct pv_bridge *kb = pv_graph_bridge(k, "lan");
	assert_int_equal(kb->n_pairs, 1);
	assert_string_equal(kb->pairs[0].from, "c");
	assert_int_equal(pv_graph_bridge(g, "lan")->n_pairs, 3);
	/* deleting a node takes its pairs too */
	assert_int_equal(pv_graph_del_node(k, "c", &e), 0);
	assert_int_equal(pv_graph_bridge(k, "lan")->n_pairs, 0);
	pv_graph_free(k);
	/* reset: every impairment and partition */
	assert_int_equal(pv_graph_partition(g, "lan", "a", "b", false, true, &e), 0);
	assert_int_equal(pv_graph_bridge_reset(g, "lan", &e), 0);
	const struct pv_bridge *b = pv_graph_bridge(g, "lan");
	assert_int_equal(b->n_pairs, 0);
	assert_int_equal(b->n_parts, 0);
	assert_int_equal(b->impair.v[PV_IMP_LATENCY], 0);
	pv_graph_free(g);
}

static void test_graph_rules(void **state)
{
	(void)state;
	struct pv_graph *g = lab3();
	struct pv_err e;
	/* reorder needs a latency, on the bridge or the pair */
	struct pv_impair_change c = one(PV_IMP_REORDER, 50000);
	struct pv_graph *k = pv_graph_clone(g);
	assert_int_equal(pv_graph_impair_bridge(k, "lan", &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "latency"));
	pv_graph_free(k);
	k = pv_graph_clone(g);
	assert_int_equal(pv_graph_impair_pair(k, "lan", "a", "b", &c, &e), -EINVAL);
	pv_graph_free(k);
	c.mask |= 1u << PV_IMP_LATENCY;
	c.val.v[PV_IMP_LATENCY] = 10;
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "b", &c, &e), 0);
	/* duplicate: alone on a port (a failed change leaves its copy of the
	 * graph half-changed: the lab throws that copy away, so do we) */
	k = pv_graph_clone(g);
	c = one(PV_IMP_DUPLICATE, 10000);
	assert_int_equal(pv_graph_impair_bridge(k, "lan", &c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "duplicat"));
	pv_graph_free(k);
	k = pv_graph_clone(g);
	assert_int_equal(pv_graph_impair_pair(k, "lan", "c", "b", &c, &e), -EINVAL);
	pv_graph_free(k);
	k = pv_graph_clone(g);
	assert_int_equal(pv_graph_impair_pair(k, "lan", "c", "a", &c, &e), 0); /* alone on a's port */
	pv_graph_free(k);
	/* whole-bridge values out of range are refused by the graph too */
	c = one(PV_IMP_DROP, 1000001);
	assert_int_equal(pv_graph_impair_bridge(g, "lan", &c, &e), -EINVAL);
	pv_graph_free(g);
}

/* ---- plan */

static const struct pv_qdisc_rec *rec(const struct pv_plan *d, const char *ifname)
{
	for (size_t i = 0; i < d->n_qdiscs; i++)
		if (!strcmp(d->qdiscs[i].ifname, ifname))
			return &d->qdiscs[i];
	return NULL;
}

static void test_plan(void **state)
{
	(void)state;
	struct pv_graph *g = lab3();
	struct pv_err e;
	struct pv_impair_change c = one(PV_IMP_LATENCY, 50);
	c.mask |= 1u << PV_IMP_BANDWIDTH;
	c.val.v[PV_IMP_BANDWIDTH] = 20000000;
	assert_int_equal(pv_graph_impair_bridge(g, "lan", &c, &e), 0);
	c = one(PV_IMP_LATENCY, 80);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "a", "b", &c, &e), 0);
	c = one(PV_IMP_DROP, 300000);
	assert_int_equal(pv_graph_impair_pair(g, "lan", "c", "b", &c, &e), 0);
	struct pv_plan d;
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_qdiscs, d.n_ports);
	assert_int_equal(d.n_qdiscs, 3);
	/* every port: the whole-bridge shape as its default class */
	char pa[16], pb[16], pc[16];
	pv_port_ifname(pv_graph_node(g, "a")->id, 1, pa);
	pv_port_ifname(pv_graph_node(g, "b")->id, 1, pb);
	pv_port_ifname(pv_graph_node(g, "c")->id, 1, pc);
	const struct pv_qdisc_rec *ra = rec(&d, pa), *rb = rec(&d, pb);
	assert_non_null(ra);
	assert_non_null(rb);
	assert_int_equal(ra->dflt.netem.latency_us, 50000);
	assert_int_equal(ra->dflt.rate_bps, 20000000);
	assert_int_equal(ra->n_classes, 0);
	/* pairs to b are classes on b's port, with only their own keys */
	assert_int_equal(rb->n_classes, 2);
	const struct pv_bridge *b = pv_graph_bridge(g, "lan");
	uint16_t m_ab = pv_bridge_impair_pair(b, "a", "b")->minor;
	for (size_t i = 0; i < rb->n_classes; i++) {
		if (rb->classes[i].minor == m_ab) {
			assert_int_equal(rb->classes[i].shape.netem.latency_us, 80000);
			assert_int_equal(rb->classes[i].shape.rate_bps, 0); /* inherits */
		} else {
			assert_int_equal(rb->classes[i].shape.netem.loss_ppm, 300000);
		}
	}
	/* the prio map: (from's port, to's port) -> 1:minor */
	assert_int_equal(d.n_prio, 2);
	bool found = false;
	for (size_t i = 0; i < d.n_prio; i++)
		if (!strcmp(d.prio[i].pair.in, pa) && !strcmp(d.prio[i].pair.out, pb)) {
			assert_int_equal(d.prio[i].classid, PV_QDISC_CLASSID(m_ab));
			found = true;
		}
	assert_true(found);
	pv_plan_free(&d);
	/* a node going down takes its classes and prio entries out of the plan,
	 * and keeps the entry in the graph */
	pv_graph_set_state(g, pv_graph_node(g, "c"), PV_STATE_SHUTDOWN);
	pv_plan_compute(g, &d);
	assert_int_equal(d.n_prio, 1);
	assert_int_equal(rec(&d, pb)->n_classes, 1);
	assert_null(rec(&d, pc));
	assert_int_equal(pv_graph_bridge(g, "lan")->n_pairs, 2);
	pv_plan_free(&d);
	pv_graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_graph_pairs),
		cmocka_unit_test(test_graph_detach_reset_clone),
		cmocka_unit_test(test_graph_rules),
		cmocka_unit_test(test_plan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
