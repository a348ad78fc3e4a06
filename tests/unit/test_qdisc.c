/* pv_qdisc_apply/clear and pv_features_probe against the real kernel: a lab
 * namespace with a bridge and three veth ports into node namespaces a, b, c.
 * The tree is checked from outside with `tc`, traffic with ping and iperf3.
 * Tests that need netem skip on a kernel without it (this machine); they run
 * for real under contrib/kernel-run (tests/integration/qdisc_netem.sh). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/shell.h"
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "netcore/features.h"
#include "netcore/qdisc.h"

static char LAB[32], NA[32], NB[32], NC[32];
static struct nl_sock *SK;
static int HAVE_NETEM = -1;

#define NETEM_SKIP_REASON "no sch_netem on this kernel (runs under contrib/kernel-run)"

/* the line of `text` containing `needle`, copied into line; false if none */
static bool line_with(const char *text, const char *needle, char *line, size_t len)
{
	const char *p = strstr(text, needle);
	if (!p)
		return false;
	while (p > text && p[-1] != '\n')
		p--;
	size_t n = strcspn(p, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(line, p, n);
	line[n] = '\0';
	return true;
}

/* "rate 20Mbit" -> 20000000; 0 if absent */
static uint64_t parse_rate(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	if (!p)
		return 0;
	char *end;
	double v = strtod(p + strlen(key), &end);
	if (!strncmp(end, "Tbit", 4)) v *= 1e12;
	else if (!strncmp(end, "Gbit", 4)) v *= 1e9;
	else if (!strncmp(end, "Mbit", 4)) v *= 1e6;
	else if (!strncmp(end, "Kbit", 4)) v *= 1e3;
	return (uint64_t)(v + 0.5);
}

/* "delay 50ms" -> 50000 (us); -1 if absent */
static double parse_us(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	if (!p)
		return -1;
	char *end;
	double v = strtod(p + strlen(key), &end);
	if (!strncmp(end, "us", 2)) return v;
	if (!strncmp(end, "ms", 2)) return v * 1e3;
	if (*end == 's') return v * 1e6;
	return v;
}

/* "loss 30%" -> 30.0; -1 if absent */
static double parse_pct(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

static char *qdiscs(const char *port) { return sh_capture("tc -n %s qdisc show dev %s", LAB, port); }
static char *classes(const char *port) { return sh_capture("tc -n %s class show dev %s", LAB, port); }

/* ---- the lab */

static struct nl_sock *sock_in(const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC), self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || self < 0 || setns(fd, CLONE_NEWNET) < 0)
		return NULL;
	/* the socket stays bound to the namespace it was made in */
	struct nl_sock *sk = nl_socket_alloc();
	if (sk && nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		sk = NULL;
	}
	if (setns(self, CLONE_NEWNET) < 0)
		abort();
	close(fd);
	close(self);
	return sk;
}

static void lab_down(void)
{
	const char *all[] = {LAB, NA, NB, NC};
	for (int i = 0; i < 4; i++) {
		if (!all[i][0])
			continue;
		sh("ip netns pids %s 2>/dev/null | xargs -r kill -9 2>/dev/null", all[i]);
		sh("ip netns del %s 2>/dev/null", all[i]);
	}
}

static int group_setup(void **state)
{
	(void)state;
	int pid = getpid();
	snprintf(LAB, sizeof(LAB), "pv-q%d-lab", pid);
	snprintf(NA, sizeof(NA), "pv-q%d-a", pid);
	snprintf(NB, sizeof(NB), "pv-q%d-b", pid);
	snprintf(NC, sizeof(NC), "pv-q%d-c", pid);
	atexit(lab_down);
	const char *node[] = {NA, NB, NC};
	int rc = sh("ip netns add %s && ip -n %s link set lo up && ip -n %s link add br0 type bridge && "
		    "ip -n %s link set br0 up",
		    LAB, LAB, LAB, LAB);
	for (int i = 0; rc == 0 && i < 3; i++)
		rc = sh("ip netns add %s && ip -n %s link set lo up && "
			"ip -n %s link add p%c type veth peer name eth0 netns %s && "
			"ip -n %s link set p%c master br0 up && ip -n %s addr add 10.9.0.%d/24 dev eth0 && "
			"ip -n %s link set eth0 up",
			node[i], node[i], LAB, 'a' + i, node[i], LAB, 'a' + i, node[i], i + 1, node[i]);
	if (rc != 0)
		return -1;
	SK = sock_in(LAB);
	if (!SK)
		return -1;
	/* the same question as the product asks, from outside */
	HAVE_NETEM = sh("tc -n %s qdisc add dev lo root handle 9: netem 2>/dev/null", LAB) == 0;
	sh("tc -n %s qdisc del dev lo root 2>/dev/null", LAB);
	/* first pings resolve ARP, so later RTTs are clean */
	sh("ip netns exec %s ping -c1 -W2 10.9.0.2 >/dev/null && ip netns exec %s ping -c1 -W2 10.9.0.2 >/dev/null",
	   NA, NC);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (SK)
		nl_socket_free(SK);
	lab_down();
	return 0;
}

static int clean_port(void **state)
{
	(void)state;
	sh("tc -n %s qdisc del dev pb root 2>/dev/null", LAB);
	sh("ip netns exec %s nft delete table bridge pvq 2>/dev/null", LAB);
	return 0;
}

static int apply(const char *port, const struct pv_port_qdisc *w, struct pv_err *e)
{
	pv_err_clear(e);
	return pv_qdisc_apply(SK, port, w, e);
}

/* main() leaves netem tests out on a kernel without netem; this is a guard */
#define NEED_NETEM() assert_true(HAVE_NETEM)

/* ---- features */

static void test_features_probe(void **state)
{
	(void)state;
	struct pv_features f;
	char buf[128];
	assert_int_equal(pv_features_probe(SK, "lo", &f), 0);
	assert_true(f.htb);
	assert_true(f.tbf);
	assert_int_equal(f.netem, HAVE_NETEM);
	pv_features_render(&f, buf, sizeof(buf));
	assert_non_null(strstr(buf, HAVE_NETEM ? "netem yes\n" : "netem no\n"));
	assert_non_null(strstr(buf, "tbf yes\nhtb yes\n"));
	/* the probe leaves the scratch as it found it */
	char *q = sh_capture("tc -n %s qdisc show dev lo", LAB);
	assert_null(strstr(q, "7ff0:"));
	free(q);
	assert_int_equal(pv_qdisc_kind_known(SK, "pb", "htb"), 1);
	assert_int_equal(pv_qdisc_kind_known(SK, "pb", "pvnosuchkind"), 0);
	assert_int_equal(pv_qdisc_kind_known(SK, "pb", "netem"), HAVE_NETEM);
	q = qdiscs("pb");
	assert_null(strstr(q, "htb"));
	free(q);
}

/* ---- shapes without netem */

static void test_rate_whole_port(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 20000000}};
	char line[512];
	assert_int_equal(apply("pb", &w, &e), 0);
	char *q = qdiscs("pb"), *c = classes("pb");
	assert_non_null(strstr(q, "qdisc htb 1: root"));
	assert_true(line_with(c, "class htb 1:fffe", line, sizeof(line)));
	assert_int_equal(parse_rate(line, "rate "), 20000000);
	assert_int_equal(parse_rate(line, "ceil "), 20000000);
	free(q);
	free(c);
	/* no kernel warning about the quantum */
	char *dm = sh_capture("dmesg 2>/dev/null | tail -5");
	assert_null(strstr(dm, "quantum of class"));
	free(dm);
}

static void test_rate_64bit(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_qdisc_class cl = {.minor = 0x10, .shape = {.rate_bps = 6000000000ull}};
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 5000000000ull}, .n_classes = 1, .classes = &cl};
	char line[512];
	assert_int_equal(apply("pb", &w, &e), 0);
	char *c = classes("pb");
	assert_true(line_with(c, "class htb 1:10 ", line, sizeof(line)));
	assert_int_equal(parse_rate(line, "rate "), 6000000000ull);
	assert_true(line_with(c, "class htb 1:fffe", line, sizeof(line)));
	assert_int_equal(parse_rate(line, "rate "), 5000000000ull);
	free(c);
	/* unlimited is a very high rate, not a missing class */
	struct pv_qdisc_class cl2 = {.minor = 0x10, .shape = {.rate_bps = 0}};
	struct pv_port_qdisc w2 = {.dflt = {.rate_bps = 0}, .n_classes = 1, .classes = &cl2};
	assert_int_equal(apply("pb", &w2, &e), 0);
	c = classes("pb");
	assert_true(line_with(c, "class htb 1:10 ", line, sizeof(line)));
	assert_int_equal(parse_rate(line, "rate "), PV_QDISC_UNLIMITED_BPS);
	free(c);
}

/* "Sent N bytes" of the qdisc whose line starts with `which` */
static uint64_t sent_bytes(const char *port, const char *which)
{
	char *s = sh_capture("tc -n %s -s qdisc show dev %s", LAB, port);
	const char *p = strstr(s, which);
	uint64_t v = 0;
	if (p && (p = strstr(p, "Sent ")))
		v = strtoull(p + 5, NULL, 10);
	free(s);
	return v;
}

static void test_change_in_place_and_classes(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_qdisc_class cl[2] = {{.minor = 0x10, .shape = {.rate_bps = 10000000}},
				       {.minor = 0x11, .shape = {.rate_bps = 30000000}}};
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 50000000}, .n_classes = 2, .classes = cl};
	char line[512];
	assert_int_equal(apply("pb", &w, &e), 0);
	sh("ip netns exec %s ping -c3 -i0.05 -q 10.9.0.2 >/dev/null", NA);
	uint64_t before = sent_bytes("pb", "qdisc htb 1: root");
	assert_true(before > 0);
	/* change one rate, drop class 0x11, add 0x12 */
	cl[0].shape.rate_bps = 12000000;
	cl[1] = (struct pv_qdisc_class){.minor = 0x12, .shape = {.rate_bps = 0}};
	assert_int_equal(apply("pb", &w, &e), 0);
	/* the root was not rebuilt: its counters go on */
	assert_true(sent_bytes("pb", "qdisc htb 1: root") >= before);
	char *c = classes("pb");
	assert_true(line_with(c, "class htb 1:10 ", line, sizeof(line)));
	assert_int_equal(parse_rate(line, "rate "), 12000000);
	assert_null(strstr(c, "1:11 "));
	assert_true(line_with(c, "class htb 1:12 ", line, sizeof(line)));
	/* unset rate inherits the whole-port rate */
	assert_int_equal(parse_rate(line, "rate "), 50000000);
	free(c);
	/* a foreign root is replaced, with our handle or another */
	const char *foreign[] = {"handle 1: tbf rate 1mbit burst 10k limit 10k",
				 "handle 5: tbf rate 1mbit burst 10k limit 10k"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sh("tc -n %s qdisc del dev pb root; tc -n %s qdisc add dev pb root %s", LAB, LAB,
				    foreign[i]),
				 0);
		assert_int_equal(apply("pb", &w, &e), 0);
		char *q = qdiscs("pb");
		assert_non_null(strstr(q, "qdisc htb 1: root"));
		assert_null(strstr(q, "tbf"));
		free(q);
		c = classes("pb");
		assert_non_null(strstr(c, "class htb 1:12 "));
		free(c);
	}
}

static void test_clear(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 20000000}};
	assert_int_equal(apply("pb", &w, &e), 0);
	assert_int_equal(pv_qdisc_clear(SK, "pb", &e), 0);
	char *q = qdiscs("pb");
	assert_null(strstr(q, "htb"));
	free(q);
	assert_int_equal(pv_qdisc_clear(SK, "pb", &e), 0);
	/* an empty spec is the same as clear */
	assert_int_equal(apply("pb", &w, &e), 0);
	struct pv_port_qdisc none = {0};
	assert_int_equal(apply("pb", &none, &e), 0);
	q = qdiscs("pb");
	assert_null(strstr(q, "htb"));
	free(q);
}

static void test_bad_spec(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_qdisc_class cl[2] = {{.minor = 0x10}, {.minor = 0x10}};
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 1000000}, .n_classes = 2, .classes = cl};
	assert_int_equal(apply("pb", &w, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "twice"));
	cl[1].minor = 1;
	assert_int_equal(apply("pb", &w, &e), -EINVAL);
	w.n_classes = 0;
	assert_int_equal(apply("pvnosuchport", &w, &e), -ENODEV);
	assert_non_null(strstr(e.msg, "pvnosuchport"));
}

/* ---- netem: refused here, real under kernel-run */

static void test_netem_refused_leaves_port(void **state)
{
	(void)state;
	assert_false(HAVE_NETEM);
	struct pv_err e;
	struct pv_qdisc_class cl = {.minor = 0x10, .shape = {.rate_bps = 10000000}};
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 20000000}, .n_classes = 1, .classes = &cl};
	/* from nothing: nothing stays */
	struct pv_port_qdisc lat = {.dflt = {.netem = {.latency_us = 50000}}};
	assert_int_equal(apply("pb", &lat, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "sch_netem"));
	char *q = qdiscs("pb");
	assert_null(strstr(q, "htb"));
	free(q);
	/* from a rate-only tree: the tree stays as it was */
	assert_int_equal(apply("pb", &w, &e), 0);
	char *q0 = qdiscs("pb"), *c0 = classes("pb");
	cl.shape.netem.loss_ppm = 300000;
	cl.shape.rate_bps = 5000000;
	assert_int_equal(apply("pb", &w, &e), -EOPNOTSUPP);
	assert_non_null(strstr(e.msg, "sch_netem"));
	char *q1 = qdiscs("pb"), *c1 = classes("pb");
	assert_string_equal(q0, q1);
	assert_string_equal(c0, c1);
	free(q0), free(q1), free(c0), free(c1);
}

static double ping_avg_ms(const char *from, const char *to, int n)
{
	char *s = sh_capture("ip netns exec %s ping -c%d -i0.05 -q %s 2>/dev/null", from, n, to);
	const char *p = strstr(s, "rtt min/avg/max");
	double avg = -1;
	if (p && (p = strchr(p, '=')))
		sscanf(strchr(p, '/') + 1, "%lf", &avg);
	free(s);
	return avg;
}

static void test_netem_latency_loss(void **state)
{
	(void)state;
	NEED_NETEM();
	struct pv_err e;
	char line[512];
	struct pv_port_qdisc w = {.dflt = {.netem = {.latency_us = 50000, .loss_ppm = 300000}}};
	assert_int_equal(apply("pb", &w, &e), 0);
	char *q = qdiscs("pb");
	assert_true(line_with(q, "qdisc netem fffe:", line, sizeof(line)));
	assert_true(fabs(parse_us(line, "delay ") - 50000) < 100);
	assert_true(fabs(parse_pct(line, "loss ") - 30) < 0.01);
	/* room for high latency under traffic */
	const char *lim = strstr(line, "limit ");
	assert_non_null(lim);
	assert_true(strtoul(lim + 6, NULL, 10) >= 10000);
	free(q);
	/* change latency: loss stays, netem not recreated (counters go on) */
	sh("ip netns exec %s ping -c3 -i0.05 -q 10.9.0.2 >/dev/null", NA);
	uint64_t before = sent_bytes("pb", "qdisc netem fffe:");
	assert_true(before > 0);
	w.dflt.netem.latency_us = 80000;
	assert_int_equal(apply("pb", &w, &e), 0);
	q = qdiscs("pb");
	assert_true(line_with(q, "qdisc netem fffe:", line, sizeof(line)));
	assert_true(fabs(parse_us(line, "delay ") - 80000) < 100);
	assert_true(fabs(parse_pct(line, "loss ") - 30) < 0.01);
	free(q);
	assert_true(sent_bytes("pb", "qdisc netem fffe:") >= before);
	/* RTT rises by the one-way latency to b (requests cross b's port) */
	w.dflt.netem.loss_ppm = 0;
	assert_int_equal(apply("pb", &w, &e), 0);
	double rtt = ping_avg_ms(NA, "10.9.0.2", 5);
	printf("# ping a->b with 80 ms on b's port: avg %.1f ms\n", rtt);
	assert_true(rtt >= 80 && rtt < 130);
	/* loss 30% over 300 requests: binomial mean 210 received, sd 7.9 */
	struct pv_port_qdisc l = {.dflt = {.netem = {.loss_ppm = 300000}}};
	assert_int_equal(apply("pb", &l, &e), 0);
	char *s = sh_capture("ip netns exec %s ping -c300 -i0.01 -W1 -q 10.9.0.2 2>/dev/null", NA);
	int tx = 0, rx = 0;
	const char *p = strstr(s, "packets transmitted");
	if (p) {
		while (p > s && p[-1] != '\n')
			p--;
		sscanf(p, "%d packets transmitted, %d received", &tx, &rx);
	}
	free(s);
	printf("# loss 30%%: %d of %d echo requests answered (expect 210 +- 36)\n", rx, tx);
	assert_int_equal(tx, 300);
	assert_true(rx >= 174 && rx <= 246);
}

static void test_netem_off_and_merge(void **state)
{
	(void)state;
	NEED_NETEM();
	struct pv_err e;
	char line[512];
	struct pv_qdisc_class cl = {.minor = 0x10, .shape = {.rate_bps = 10000000, .netem = {.latency_us = 20000}}};
	struct pv_port_qdisc w = {.dflt = {.netem = {.latency_us = 50000, .loss_ppm = 10000, .corrupt_ppm = 100000}},
				  .n_classes = 1,
				  .classes = &cl};
	assert_int_equal(apply("pb", &w, &e), 0);
	char *q = qdiscs("pb");
	/* the pair overrides latency, inherits loss and corruption */
	assert_true(line_with(q, "qdisc netem 10: parent 1:10", line, sizeof(line)));
	assert_true(fabs(parse_us(line, "delay ") - 20000) < 100);
	assert_true(fabs(parse_pct(line, "loss ") - 1) < 0.01);
	assert_true(fabs(parse_pct(line, "corrupt ") - 10) < 0.01);
	free(q);
	/* turning corruption off really turns it off */
	w.dflt.netem.corrupt_ppm = 0;
	assert_int_equal(apply("pb", &w, &e), 0);
	q = qdiscs("pb");
	assert_true(line_with(q, "qdisc netem 10: parent 1:10", line, sizeof(line)));
	assert_null(strstr(line, "corrupt"));
	free(q);
	/* no netem left for the pair: the netem goes, the class stays */
	cl.shape.netem.latency_us = 0;
	w.dflt.netem = (struct pv_netem){0};
	assert_int_equal(apply("pb", &w, &e), 0);
	q = qdiscs("pb");
	assert_null(strstr(q, "netem"));
	free(q);
	char *c = classes("pb");
	assert_non_null(strstr(c, "class htb 1:10 "));
	free(c);
	/* our rate-only tree gains a netem again (the kind check must not refuse) */
	cl.shape.netem.latency_us = 5000;
	assert_int_equal(apply("pb", &w, &e), 0);
	q = qdiscs("pb");
	assert_non_null(strstr(q, "qdisc netem 10: parent 1:10"));
	assert_non_null(strstr(q, "qdisc htb 1: root"));
	free(q);
}

/* ---- bandwidth with real traffic */

static double iperf_mbit(const char *srv_ns, const char *cli_ns, const char *addr)
{
	if (sh("ip netns exec %s timeout 15 iperf3 -s -1 -p 5299 >/dev/null 2>&1 &", srv_ns) != 0)
		return -1;
	char *s = NULL;
	for (int i = 0; i < 20; i++) {
		usleep(100000);
		free(s);
		s = sh_capture("ip netns exec %s iperf3 -c %s -p 5299 -t 2 -J 2>/dev/null", cli_ns, addr);
		if (strstr(s, "sum_received"))
			break;
	}
	double bps = -1;
	const char *p = strstr(s, "\"sum_received\"");
	if (p && (p = strstr(p, "\"bits_per_second\":")))
		bps = strtod(p + strlen("\"bits_per_second\":"), NULL);
	free(s);
	return bps / 1e6;
}

static void test_bandwidth_whole_port(void **state)
{
	(void)state;
	struct pv_err e;
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 20000000}};
	assert_int_equal(apply("pb", &w, &e), 0);
	double m = iperf_mbit(NB, NA, "10.9.0.2");
	printf("# iperf3 a->b, whole port at 20 Mbit/s: %.2f Mbit/s\n", m);
	assert_true(m > 17 && m < 23);
}

static void test_bandwidth_per_pair(void **state)
{
	(void)state;
	struct pv_err e;
	/* what the lab's nftables map does: mark a->b frames with class 1:10 */
	assert_int_equal(sh("ip netns exec %s nft -f - <<'EOF'\n"
			    "table bridge pvq {\n"
			    "  chain forward { type filter hook forward priority 0; policy accept;\n"
			    "    iifname \"pa\" oifname \"pb\" meta priority set 1:10\n"
			    "  }\n"
			    "}\nEOF",
			    LAB),
			 0);
	struct pv_qdisc_class cl = {.minor = 0x10, .shape = {.rate_bps = 20000000}};
	struct pv_port_qdisc w = {.n_classes = 1, .classes = &cl};
	assert_int_equal(apply("pb", &w, &e), 0);
	double ab = iperf_mbit(NB, NA, "10.9.0.2");
	double cb = iperf_mbit(NB, NC, "10.9.0.2");
	printf("# iperf3 pair a->b at 20 Mbit/s: %.2f Mbit/s; c->b unshaped: %.2f Mbit/s\n", ab, cb);
	assert_true(ab > 17 && ab < 23);
	assert_true(cb > 100);
}

/* ---- timing: library vs a tc subprocess for the same one-parameter change */

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void test_timing(void **state)
{
	(void)state;
	enum { N = 31 };
	double lib[N], tc[N];
	struct pv_err e;
	struct pv_port_qdisc w = {.dflt = {.rate_bps = 20000000}};
	if (HAVE_NETEM)
		w.dflt = (struct pv_shape){.netem = {.latency_us = 10000}};
	assert_int_equal(apply("pb", &w, &e), 0);
	for (int i = 0; i < N; i++) {
		double t0 = now_us();
		if (HAVE_NETEM)
			w.dflt.netem.latency_us = 10000 + 1000 * (i % 2);
		else
			w.dflt.rate_bps = 20000000 + 1000000 * (i % 2);
		assert_int_equal(apply("pb", &w, &e), 0);
		lib[i] = now_us() - t0;
		t0 = now_us();
		if (HAVE_NETEM)
			sh("tc -n %s qdisc replace dev pb parent 1:fffe handle fffe: netem delay %dms limit 10000",
			   LAB, 10 + (i % 2));
		else
			sh("tc -n %s class replace dev pb parent 1: classid 1:fffe htb rate %dmbit quantum 200000", LAB, 20 + (i % 2));
		tc[i] = now_us() - t0;
	}
	qsort(lib, N, sizeof(double), cmp_d);
	qsort(tc, N, sizeof(double), cmp_d);
	printf("# timing (%s change, median of %d): pv_qdisc_apply %.0f us, tc subprocess %.0f us\n",
	       HAVE_NETEM ? "netem latency" : "htb rate (no netem here)", N, lib[N / 2], tc[N / 2]);
}

/* Tests that cannot run on this kernel are left out of the cmocka group and
 * reported as "skipped - NAME: reason" (cmocka 1.1's skip() prints "not ok",
 * which tests/run would count as a failure). */
struct entry {
	struct CMUnitTest t;
	int needs_netem; /* 1 = needs it, -1 = needs it absent, 0 = either */
};

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (geteuid() != 0) {
		printf("skipped - test_qdisc: needs root\n");
		return 0;
	}
	static const struct entry all[] = {
		{cmocka_unit_test_teardown(test_features_probe, clean_port), 0},
		{cmocka_unit_test_teardown(test_rate_whole_port, clean_port), 0},
		{cmocka_unit_test_teardown(test_rate_64bit, clean_port), 0},
		{cmocka_unit_test_teardown(test_change_in_place_and_classes, clean_port), 0},
		{cmocka_unit_test_teardown(test_clear, clean_port), 0},
		{cmocka_unit_test_teardown(test_bad_spec, clean_port), 0},
		{cmocka_unit_test_teardown(test_netem_refused_leaves_port, clean_port), -1},
		{cmocka_unit_test_teardown(test_netem_latency_loss, clean_port), 1},
		{cmocka_unit_test_teardown(test_netem_off_and_merge, clean_port), 1},
		{cmocka_unit_test_teardown(test_bandwidth_whole_port, clean_port), 0},
		{cmocka_unit_test_teardown(test_bandwidth_per_pair, clean_port), 0},
		{cmocka_unit_test_teardown(test_timing, clean_port), 0},
	};
	enum { N_ALL = sizeof(all) / sizeof(all[0]) };
	struct CMUnitTest run[N_ALL];
	size_t n = 0;
	if (group_setup(NULL) != 0) {
		printf("not ok - test_qdisc: cannot build the lab namespaces with ip(8)\n");
		lab_down();
		return 1;
	}
	for (size_t i = 0; i < N_ALL; i++) {
		if (all[i].needs_netem == 1 && !HAVE_NETEM)
			printf("skipped - %s: " NETEM_SKIP_REASON "\n", all[i].t.name);
		else if (all[i].needs_netem == -1 && HAVE_NETEM)
			printf("skipped - %s: this kernel has sch_netem; the refusal path needs one without\n",
			       all[i].t.name);
		else
			run[n++] = all[i].t;
	}
	int rc = _cmocka_run_group_tests("test_qdisc", run, n, NULL, NULL);
	group_teardown(NULL);
	return rc;
}
