/* pv_nsexec_run against the real kernel: a netns made with `ip netns add`
 * (from outside, as a test may), a hosts file bind-mounted over /etc/hosts,
 * a host name, exit codes, streams, timeouts. Needs root. */
/* cmocka.h needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/shell.h"
// clang-format on

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netcore/nsexec.h"

struct ctx {
	char ns[64];
	char ns_path[128];
	char dir[64];
	char hosts[128];
	char *host_hosts; /* the host's /etc/hosts before the test */
	size_t host_hosts_len;
};

static struct ctx C;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0, r;
	do {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0; /* each test skips */
	snprintf(C.ns, sizeof(C.ns), "pvexec%d", (int)getpid());
	snprintf(C.ns_path, sizeof(C.ns_path), "/run/netns/%s", C.ns);
	snprintf(C.dir, sizeof(C.dir), "/tmp/pvexec.XXXXXX");
	if (!mkdtemp(C.dir))
		return -1;
	snprintf(C.hosts, sizeof(C.hosts), "%s/hosts", C.dir);
	FILE *f = fopen(C.hosts, "w");
	if (!f)
		return -1;
	fprintf(f, "127.0.0.1 localhost\n10.9.9.9 peer.lan\n");
	fclose(f);
	C.host_hosts = slurp("/etc/hosts", &C.host_hosts_len);
	return sh("ip netns add %s", C.ns) == 0 ? 0 : -1;
}

/* Always runs: background commands left in the node are killed, then the
 * namespace and the temp dir go. */
static int teardown(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	sh("ip netns pids %s 2>/dev/null | xargs -r kill -9", C.ns);
	sh("ip netns del %s 2>/dev/null", C.ns);
	sh("rm -rf '%s'", C.dir);
	free(C.host_hosts);
	C.host_hosts = NULL;
	return 0;
}

#define NEED_ROOT()                                                                                \
	do {                                                                                       \
		if (geteuid() != 0)                                                                \
			skip();                                                                    \
	} while (0)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs a shell line in the test node; fails the test if it cannot start. */
static void run_cmd(const char *cmd, double timeout, struct pv_run_result *res)
{
	struct pv_nsexec_target t = {
	    .netns_path = C.ns_path, .hosts_path = C.hosts, .hostname = "pvnode"};
	struct pv_run_req req = {.cmd = (char *)cmd, .timeout = timeout};
	struct pv_err err = {0};
	int rc = pv_nsexec_run(&t, &req, res, &err);
	if (rc)
		fail_msg("run [%s]: %d %s", cmd, rc, err.msg);
}

static void test_hosts_bind(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_result r;
	run_cmd("getent hosts peer.lan", 5, &r);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, "10.9.9.9"));
	pv_run_result_free(&r);

	/* the host saw nothing: same /etc/hosts, no mount on it */
	size_t n;
	char *now = slurp("/etc/hosts", &n);
	assert_non_null(now);
	assert_int_equal(n, C.host_hosts_len);
	assert_memory_equal(now, C.host_hosts, n);
	free(now);
	char *mi = slurp("/proc/self/mountinfo", &n);
	assert_null(strstr(mi, " /etc/hosts "));
	free(mi);
}

static void test_in_netns(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_result r;
	run_cmd("ip -o link", 5, &r);
	assert_int_equal(r.exit_code, 0);
	assert_non_null(strstr(r.out, ": lo:"));
	/* exactly one line: lo and nothing of the host's */
	assert_non_null(strchr(r.out, '\n'));
	assert_string_equal(strchr(r.out, '\n'), "\n");
	pv_run_result_free(&r);

	/* /sys was remounted for the node too */
	run_cmd("ls /sys/class/net", 5, &r);
	assert_string_equal(r.out, "lo\n");
	pv_run_result_free(&r);
}

static void test_hostname(void **state)
{
	(void)state;
	NEED_ROOT();
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct pv_run_result r;
	run_cmd("hostname", 5, &r);
	assert_string_equal(r.out, "pvnode\n");
	pv_run_result_free(&r);
	char after[256] = "";
	gethostname(after, sizeof(after) - 1);
	assert_string_equal(host, after);
}

static void test_exit_and_stderr(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_result r;
	run_cmd("echo out; echo oops >&2; exit 3", 5, &r);
	assert_int_equal(r.status, PV_RUN_EXITED);
	assert_int_equal(r.exit_code, 3);
	assert_int_equal(r.signal, 0);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.err, "oops\n");
	pv_run_result_free(&r);
}

static void test_stdin(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_nsexec_target t = {.netns_path = C.ns_path};
	struct pv_run_req req = {.cmd = (char *)"cat",
				 .stdin_data = (char *)"hello\0world\n",
				 .stdin_len = 12,
				 .timeout = 5};
	struct pv_run_result r;
	struct pv_err err = {0};
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_int_equal(r.out_len, 12);
	assert_memory_equal(r.out, "hello\0world\n", 12);
	pv_run_result_free(&r);

	/* 4 MB through cat: stdin and stdout must interleave or both block */
	size_t big = 4u << 20;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	req.stdin_data = data;
	req.stdin_len = big;
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out_len, big);
	assert_memory_equal(r.out, data, big);
	pv_run_result_free(&r);

	/* a command that ignores its stdin: no SIGPIPE kills us */
	req.cmd = (char *)"exec 0<&-; echo done";
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_string_equal(r.out, "done\n");
	pv_run_result_free(&r);
	free(data);
}

static void test_env_cwd_argv(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_nsexec_target t = {.netns_path = C.ns_path};
	char *env[] = {(char *)"FOO=bar baz", (char *)"HOME=/tmp", NULL};
	struct pv_run_req req = {.cmd = (char *)"echo \"$FOO|$HOME|$TERM|$PATH\"; pwd; env | wc -l",
				 .env = env,
				 .cwd = (char *)"/usr",
				 .timeout = 5};
	struct pv_run_result r;
	struct pv_err err = {0};
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	/* PWD is set by the shell itself: 4 variables + PWD (+ dash's OLDPWD?) */
	assert_non_null(strstr(
	    r.out,
	    "bar "
	    "baz|/tmp|dumb|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/usr\n"));
	pv_run_result_free(&r);

	/* argv: no shell, found on PATH, arguments verbatim */
	char *argv[] = {(char *)"printf", (char *)"[%s]", (char *)"a b", (char *)"$FOO", NULL};
	req.cmd = NULL;
	req.argv = argv;
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out, "[a b][$FOO]");
	pv_run_result_free(&r);

	/* a program that does not exist: 127 and a message, like a shell */
	char *nope[] = {(char *)"pv-no-such-program", NULL};
	req.argv = nope;
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_int_equal(r.status, PV_RUN_EXITED);
	assert_int_equal(r.exit_code, 127);
	assert_non_null(strstr(r.err, "pv-no-such-program: not found"));
	pv_run_result_free(&r);

	/* found but not executable: 126 */
	char *noexec[] = {C.hosts, NULL}; /* mode 0644 */
	req.argv = noexec;
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), 0);
	assert_int_equal(r.exit_code, 126);
	assert_non_null(strstr(r.err, "permission denied"));
	pv_run_result_free(&r);
}

static void test_timeout(void **state)
{
	(void)state;
	NEED_ROOT();
	char cmd[128], pat[32];
	snprintf(pat, sizeof(pat), "sleep 9.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s; echo never", pat);
	struct pv_run_result r;
	double t0 = now_s();
	run_cmd(cmd, 0.5, &r);
	double took = now_s() - t0;
	assert_int_equal(r.status, PV_RUN_TIMED_OUT);
	assert_int_equal(r.exit_code, 137);
	assert_int_equal(r.signal, SIGKILL);
	assert_string_equal(r.out, "");
	pv_run_result_free(&r);
	if (took < 0.45 || took > 1.2)
		fail_msg("timeout of 0.5 s took %.3f s", took);
	/* the whole group went, not only the shell */
	assert_int_not_equal(sh("pgrep -fx '%s' >/dev/null", pat), 0);
}

static void test_signalled(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_result r;
	run_cmd("echo before; kill -TERM $$; echo after", 5, &r);
	assert_int_equal(r.status, PV_RUN_SIGNALLED);
	assert_int_equal(r.signal, 15);
	assert_int_equal(r.exit_code, 128 + 15);
	assert_string_equal(r.out, "before\n");
	pv_run_result_free(&r);
}

static void test_big_output(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_result r;
	run_cmd("head -c 1048576 /dev/zero | tr '\\0' x; head -c 70000 /dev/zero >&2", 10, &r);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out_len, 1048576);
	for (size_t i = 0; i < r.out_len; i++)
		if (r.out[i] != 'x')
			fail_msg("byte %zu is %d", i, r.out[i]);
	assert_int_equal(r.err_len, 70000);
	pv_run_result_free(&r);
}

static void test_background_child(void **state)
{
	(void)state;
	NEED_ROOT();
	char cmd[128], pat[32];
	snprintf(pat, sizeof(pat), "sleep 100.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s & echo started", pat);
	struct pv_run_result r;
	double t0 = now_s();
	run_cmd(cmd, 10, &r);
	double took = now_s() - t0;
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out, "started\n");
	pv_run_result_free(&r);
	if (took > 0.5)
		fail_msg("run with a background child took %.3f s", took);
	/* it lives on in the node (teardown kills it) */
	assert_int_equal(sh("pgrep -fx '%s' >/dev/null", pat), 0);
}

static void test_errors(void **state)
{
	(void)state;
	NEED_ROOT();
	struct pv_run_req req = {.cmd = (char *)"true", .timeout = 5};
	struct pv_run_result r;
	struct pv_err err = {0};
	char missing[128];
	snprintf(missing, sizeof(missing), "/run/netns/pv-missing%d", (int)getpid());
	struct pv_nsexec_target t = {.netns_path = missing};
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, missing));

	t.netns_path = C.hosts; /* a file, but not a namespace */
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, C.hosts));

	t.netns_path = C.ns_path;
	t.hosts_path = "/nonexistent/pvhosts";
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/pvhosts"));

	t.hosts_path = NULL;
	req.cwd = (char *)"/nonexistent/pvdir";
	assert_int_equal(pv_nsexec_run(&t, &req, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/pvdir"));
	assert_non_null(strstr(err.msg, C.ns_path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hosts_bind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_netns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostname, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exit_and_stderr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_cwd_argv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signalled, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_background_child, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests_name("nsexec", tests, NULL, NULL);
}
