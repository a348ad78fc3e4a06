/* netcore/nft against the real kernel: a bridge in a lab namespace with three
 * veth ports to three node namespaces; the table is checked from outside with
 * `nft list` and by traffic (ping, and per-node nft counters of the echo
 * requests that actually arrived). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/shell.h"

#include "netcore/nft.h"

static char lab[32], node[3][32];
/* The latest listing of the table; owned here so a failing assert leaks nothing. */
static char *listing;
static int skip_all; /* not root, or the lab could not be built */
static int home_ns = -1;

static const char *const PORT[3] = {"pa", "pb", "pc"};
static const char *const IP4[3] = {"10.99.0.1", "10.99.0.2", "10.99.0.3"};
static const char *const IP6[3] = {"fd00:99::1", "fd00:99::2", "fd00:99::3"};

static int ping4(int from, int to)
{
	return sh("ip netns exec %s ping -c1 -W1 -q %s >/dev/null 2>&1", node[from], IP4[to]) == 0;
}

static int ping6(int from, int to)
{
	return sh("ip netns exec %s ping -6 -c1 -W1 -q %s >/dev/null 2>&1", node[from], IP6[to]) ==
	       0;
}

/* Echo requests (v4 + v6) that reached node i's input hook so far. */
static long requests_seen(int i)
{
	char *s = sh_capture("ip netns exec %s nft list chain inet pvcount in", node[i]);
	long total = 0;
	for (char *p = s; (p = strstr(p, "packets ")); p += 8)
		total += strtol(p + 8, NULL, 10);
	free(s);
	return total;
}

static void lab_down(void)
{
	sh("ip netns del %s 2>/dev/null", lab);
	for (int i = 0; i < 3; i++)
		sh("ip netns del %s 2>/dev/null", node[i]);
}

static int node_up(int i)
{
	const char *n = node[i];
	return sh("ip netns add %s", n) ||
	       sh("ip -n %s link add %s type veth peer name eth0 netns %s", lab, PORT[i], n) ||
	       sh("ip -n %s link set %s master br0 up", lab, PORT[i]) ||
	       sh("ip -n %s addr add %s/24 dev eth0", n, IP4[i]) ||
	       sh("ip -n %s addr add %s/64 dev eth0 nodad", n, IP6[i]) ||
	       sh("ip -n %s link set eth0 up && ip -n %s link set lo up", n, n) ||
	       sh("ip netns exec %s nft 'add table inet pvcount; add chain inet pvcount in "
		  "{ type filter hook input priority 0; }; add rule inet pvcount in "
		  "icmp type echo-request counter; add rule inet pvcount in "
		  "icmpv6 type echo-request counter'",
		  n);
}

static int lab_up(void **state)
{
	(void)state;
	snprintf(lab, sizeof(lab), "pvnft%dl", (int)getpid());
	for (int i = 0; i < 3; i++)
		snprintf(node[i], sizeof(node[i]), "pvnft%d%c", (int)getpid(), 'a' + i);
	if (geteuid() != 0) {
		skip_all = 1;
		return 0;
	}
	if (sh("ip netns add %s", lab) || sh("ip -n %s link add br0 type bridge", lab) ||
	    sh("ip -n %s link set br0 up", lab))
		goto fail;
	for (int i = 0; i < 3; i++)
		if (node_up(i))
			goto fail;
	/* the test thread lives in the lab, where pv_nft_open makes the table */
	char path[64];
	snprintf(path, sizeof(path), "/run/netns/%s", lab);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	home_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || home_ns < 0 || setns(fd, CLONE_NEWNET)) {
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	lab_down();
	skip_all = 1; /* tests report the skip; the lab is gone */
	return 0;
}

static int lab_teardown(void **state)
{
	(void)state;
	if (home_ns >= 0) {
		setns(home_ns, CLONE_NEWNET);
		close(home_ns);
	}
	lab_down();
	return 0;
}

static int nft_setup(void **state)
{
	*state = NULL;
	if (skip_all)
		return 0;
	struct pv_nft *n;
	struct pv_err err = {0};
	int ret = pv_nft_open(&n, &err);
	if (ret) {
		fprintf(stderr, "# pv_nft_open: %s\n", err.msg);
		return -1;
	}
	*state = n;
	return 0;
}

static int nft_teardown(void **state)
{
	free(listing);
	listing = NULL;
	pv_nft_close(*state, 1);
	return 0;
}

#define NEED_LAB()                                                                                 \
	do {                                                                                       \
		if (skip_all)                                                                      \
			skip();                                                                    \
	} while (0)

static struct pv_nft_pair pair(int a, int b)
{
	struct pv_nft_pair p = {{0}, {0}};
	snprintf(p.in, sizeof(p.in), "%s", PORT[a]);
	snprintf(p.out, sizeof(p.out), "%s", PORT[b]);
	return p;
}

static void apply_ok(struct pv_nft *n, const struct pv_nft_state *st)
{
	struct pv_err err = {0};
	int ret = pv_nft_apply(n, st, &err);
	if (ret)
		fprintf(stderr, "# pv_nft_apply: %s\n", err.msg);
	assert_int_equal(ret, 0);
}

static long count_elements(const char *set);

static const char *list_table(void)
{
	free(listing);
	listing = sh_capture("ip netns exec %s nft list table bridge " PV_NFT_TABLE " 2>&1", lab);
	return listing;
}

static const char *list_marked(void)
{
	free(listing);
	listing = sh_capture("ip netns exec %s nft list table bridge pvchk 2>&1", lab);
	return listing;
}

#define assert_listed(s, needle)                                                                   \
	do {                                                                                       \
		if (!strstr((s), (needle)))                                                        \
			fail_msg("`%s` missing from:\n%s", (needle), (s));                         \
	} while (0)

static void test_open_shape(void **state)
{
	(void)state;
	NEED_LAB();
	const char *s = list_table();
	const char *want[] = {
	    "set drop_pairs",
	    "type ifname . ifname",
	    "set isolated",
	    "type ifname\n",
	    "set oneway",
	    "map prio",
	    "type ifname . ifname : classid",
	    "type filter hook forward priority 0; policy accept;",
	    "iifname . oifname @drop_pairs drop",
	    "iifname @isolated drop",
	    "oifname @isolated drop",
	    "meta protocol arp accept",
	    "icmpv6 type 133-137 accept",
	    "iifname . oifname @oneway drop",
	    "meta priority set iifname . oifname map @prio",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_listed(s, want[i]);
	/* the rules in the contract's order */
	assert_true(strstr(s, "@drop_pairs drop") < strstr(s, "iifname @isolated"));
	assert_true(strstr(s, "arp accept") < strstr(s, "@oneway drop"));
	assert_true(strstr(s, "@oneway drop") < strstr(s, "map @prio"));

	/* opening again replaces the table instead of failing or doubling it */
	struct pv_nft *again;
	struct pv_err err = {0};
	assert_int_equal(pv_nft_open(&again, &err), 0);
	s = list_table();
	const char *second = strstr(s, "iifname @isolated drop");
	assert_non_null(second);
	assert_null(strstr(second + 1, "iifname @isolated drop"));
	pv_nft_close(again, 0);
}

static void test_symmetric(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	assert_true(ping4(0, 1));
	struct pv_nft_pair d[] = {pair(0, 1), pair(1, 0), pair(0, 1)}; /* with a duplicate */
	struct pv_nft_state st = {.drop = d, .n_drop = 3};
	apply_ok(n, &st);
	assert_false(ping4(0, 1));
	assert_false(ping4(1, 0));
	assert_true(ping4(0, 2));
	assert_true(ping4(2, 1));
	assert_int_equal(count_elements("drop_pairs"), 2); /* the duplicate is ignored */
	struct pv_nft_state none = {0};
	apply_ok(n, &none);
	assert_true(ping4(0, 1));
	assert_true(ping4(1, 0));
}

static void test_isolated(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	const char iso[1][16] = {"pc"};
	struct pv_nft_state st = {.isolated = iso, .n_isolated = 1};
	apply_ok(n, &st);
	assert_false(ping4(2, 0));
	assert_false(ping4(1, 2));
	assert_true(ping4(0, 1));
	struct pv_nft_state none = {0};
	apply_ok(n, &none);
	assert_true(ping4(2, 0));
}

/* one-way a->b: frames from a's port to b's port are dropped, b->a pass */
static void test_oneway(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	struct pv_nft_pair ow[] = {pair(0, 1)};
	struct pv_nft_state st = {.oneway = ow, .n_oneway = 1};
	apply_ok(n, &st);
	/* b must resolve a afresh: its ARP/ND request passes, a's answer is exempt */
	sh("ip -n %s neigh flush all; ip -n %s neigh flush all", node[0], node[1]);

	long before = requests_seen(1);
	assert_false(ping4(0, 1));
	assert_int_equal(requests_seen(1), before); /* a's request never reached b */

	before = requests_seen(0);
	assert_false(ping4(1, 0));			/* a's reply is dropped ... */
	assert_int_equal(requests_seen(0), before + 1); /* ... but b's request arrived */
	assert_false(ping6(1, 0));
	assert_int_equal(requests_seen(0), before + 2); /* ND answers pass too */

	assert_true(ping4(0, 2));
	assert_true(ping4(2, 1));
	struct pv_nft_state none = {0};
	apply_ok(n, &none);
	assert_true(ping4(0, 1));
	assert_true(ping6(1, 0));
}

static void test_prio_map(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	struct pv_nft_prio p[] = {{pair(0, 1), 0x00010010}, {pair(2, 1), 0x00010020}};
	struct pv_nft_state st = {.prio = p, .n_prio = 2};
	apply_ok(n, &st);
	const char *s = list_table();
	assert_listed(s, "\"pa\" . \"pb\" : 1:10");
	assert_listed(s, "\"pc\" . \"pb\" : 1:20");
	p[0].classid = 0x00010030; /* a changed value: delete + add in one batch */
	apply_ok(n, &st);
	s = list_table();
	assert_listed(s, "\"pa\" . \"pb\" : 1:30");
	assert_null(strstr(s, "1:10"));
	assert_listed(s, "\"pc\" . \"pb\" : 1:20");
	/* the kernel marks a->b frames 1:30: a counter at the bridge's postrouting
	 * hook, in a table of the test's own, sees the priority */
	assert_int_equal(sh("ip netns exec %s nft 'add table bridge pvchk; add chain bridge "
			    "pvchk post { type filter hook postrouting priority 0; }; add rule "
			    "bridge pvchk post meta priority 1:30 icmp type echo-request "
			    "counter'",
			    lab),
			 0);
	assert_true(ping4(0, 1)); /* marking does not drop */
	assert_true(ping4(2, 1));
	s = list_marked();
	sh("ip netns exec %s nft delete table bridge pvchk", lab);
	assert_listed(s, "counter packets 1 ");
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long count_elements(const char *set)
{
	char *s = sh_capture("ip netns exec %s nft -j list set bridge " PV_NFT_TABLE " %s", lab, set);
	long c = 0;
	for (char *p = s; (p = strstr(p, "\"concat\"")); p++)
		c++;
	free(s);
	return c;
}

static void test_bulk_and_timing(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	enum { N = 1000, ROUNDS = 200 };
	struct pv_nft_pair *d = calloc(N + 1, sizeof(*d));
	for (int i = 0; i <= N; i++) {
		snprintf(d[i].in, sizeof(d[i].in), "x%d", i);
		snprintf(d[i].out, sizeof(d[i].out), "y%d", i);
	}
	struct pv_nft_state st = {.drop = d, .n_drop = N};
	long t0 = now_ns();
	apply_ok(n, &st);
	print_message("# bulk apply of %d pairs: %ld us\n", N, (now_ns() - t0) / 1000);
	assert_int_equal(count_elements("drop_pairs"), N);

	long us[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		st.n_drop = N + (r % 2 == 0); /* the extra pair comes and goes */
		t0 = now_ns();
		apply_ok(n, &st);
		us[r] = (now_ns() - t0) / 1000;
	}
	qsort(us, ROUNDS, sizeof(us[0]), cmp_long);
	print_message("# median apply us: %ld\n", us[ROUNDS / 2]);
	/* the diff alone: an apply with no difference sends nothing */
	for (int r = 0; r < ROUNDS; r++) {
		t0 = now_ns();
		apply_ok(n, &st);
		us[r] = (now_ns() - t0) / 1000;
	}
	qsort(us, ROUNDS, sizeof(us[0]), cmp_long);
	print_message("# median no-op apply us (diff of %d elements): %ld\n", N, us[ROUNDS / 2]);
	assert_int_equal(count_elements("drop_pairs"), N);
	st.n_drop = N + 1;
	apply_ok(n, &st);
	assert_int_equal(count_elements("drop_pairs"), N + 1);
	free(d);

	/* a batch larger than the default socket send buffer, in many messages */
	enum { BIG = 20000 };
	d = calloc(BIG, sizeof(*d));
	for (int i = 0; i < BIG; i++) {
		snprintf(d[i].in, sizeof(d[i].in), "big%d", i);
		snprintf(d[i].out, sizeof(d[i].out), "port%d", i % 7);
	}
	struct pv_nft_state big = {.drop = d, .n_drop = BIG};
	t0 = now_ns();
	apply_ok(n, &big);
	print_message("# replacing %d pairs by %d: %ld us\n", N + 1, BIG, (now_ns() - t0) / 1000);
	assert_int_equal(count_elements("drop_pairs"), BIG);
	free(d);
}

/* A refused batch leaves the record as it was: after the table is rebuilt
 * from outside with the old content, the same apply sends just the change. */
static void test_refused_keeps_record(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	struct pv_nft_pair d[] = {pair(0, 1), pair(2, 0)};
	struct pv_nft_state one = {.drop = d, .n_drop = 1}, two = {.drop = d, .n_drop = 2};
	apply_ok(n, &one);
	assert_int_equal(sh("ip netns exec %s nft delete table bridge " PV_NFT_TABLE, lab), 0);

	apply_ok(n, &one); /* no difference: nothing is sent, so nothing fails */
	struct pv_err err = {0};
	int ret = pv_nft_apply(n, &two, &err);
	assert_true(ret < 0);
	assert_int_equal(err.code, -ret);
	assert_non_null(strstr(err.msg, PV_NFT_TABLE));

	assert_int_equal(sh("ip netns exec %s nft 'add table bridge " PV_NFT_TABLE "; add set "
			    "bridge " PV_NFT_TABLE " drop_pairs { type ifname . ifname; "
			    "elements = { \"pa\" . \"pb\" }; }'",
			    lab),
			 0);
	apply_ok(n, &two);
	const char *s = list_table();
	assert_listed(s, "\"pc\" . \"pa\"");
	assert_listed(s, "\"pa\" . \"pb\"");
	apply_ok(n, &one);
	s = list_table();
	assert_null(strstr(s, "\"pc\" . \"pa\""));
	/* the handle's table lacks the other sets now; close(destroy) still removes it */
}

static void test_bad_name(void **state)
{
	NEED_LAB();
	struct pv_nft *n = *state;
	struct pv_nft_pair d[] = {pair(0, 1), {"", "pb"}};
	struct pv_nft_state st = {.drop = d, .n_drop = 2};
	struct pv_err err = {0};
	assert_int_equal(pv_nft_apply(n, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "drop pair #1"));
	memset(d[1].in, 'x', sizeof(d[1].in)); /* no terminating NUL */
	assert_int_equal(pv_nft_apply(n, &st, &err), -EINVAL);
	st.n_drop = 1;
	apply_ok(n, &st);
	assert_int_equal(count_elements("drop_pairs"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_shape, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_symmetric, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_isolated, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_oneway, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_prio_map, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_bulk_and_timing, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_refused_keeps_record, nft_setup, nft_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_name, nft_setup, nft_teardown),
	};
	return cmocka_run_group_tests(tests, lab_up, lab_teardown);
}
