/* provium-agent and its client, end to end without a VM: the agent runs as a
 * child process on one end of a socketpair (--fd), the client on the other.
 * The NIC test runs the agent inside a network namespace made for it. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/shell.h"

#include "guest/lib/agent_client.h"

struct agent_proc {
	pid_t pid;
	struct pv_agent *a;
};

static char tmpdir[64];
static char agent_bin[4096];
static struct agent_proc shared; /* one agent for most tests */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int find_agent(void)
{
	const char *b = getenv("PV_BUILD");
	if (b) {
		snprintf(agent_bin, sizeof(agent_bin), "%s/provium-agent", b);
	} else {
		/* the test binary sits in $PV_BUILD/tests/ */
		char self[4000];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return -1;
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(agent_bin, sizeof(agent_bin), "%s/../provium-agent", self);
	}
	return access(agent_bin, X_OK);
}

/* Start the agent on one end of a socketpair, behind an optional command
 * prefix (ip netns exec, unshare). The client's end is close-on-exec, so no
 * other child keeps the connection alive after the agent dies. */
static int agent_start_with(struct agent_proc *p, const char *const *prefix)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	p->pid = fork();
	if (p->pid == 0) {
		/* its greeting would land in the middle of the TAP lines */
		char log[128];
		snprintf(log, sizeof(log), "%s/agent.log", tmpdir);
		int l = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (l >= 0)
			dup2(l, 2);
		fcntl(sv[1], F_SETFD, 0);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", sv[1]);
		const char *argv[16];
		size_t n = 0;
		for (; prefix && prefix[n]; n++)
			argv[n] = prefix[n];
		const char *tail[] = {agent_bin, "--fd", fd, "--etc", tmpdir, NULL};
		memcpy(argv + n, tail, sizeof(tail));
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	close(sv[1]);
	struct pv_err err = {0};
	int rc = pv_agent_from_fd(sv[0], 5000, &p->a, &err);
	if (rc)
		fprintf(stderr, "# agent_start: %s\n", err.msg);
	return rc;
}

static int agent_start(struct agent_proc *p, const char *ns)
{
	const char *in_ns[] = {"ip", "netns", "exec", ns, NULL};
	return agent_start_with(p, ns ? in_ns : NULL);
}

static void agent_stop(struct agent_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	pv_agent_close(p->a);
	p->a = NULL;
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	/* orphans of a killed agent come back to us, so we can reap what we kill */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (find_agent()) {
		fprintf(stderr, "# provium-agent not built at %s\n", agent_bin);
		return -1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pvag-test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return agent_start(&shared, NULL) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	agent_stop(&shared);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) ? -1 : 0;
}

/* ---- helpers ---- */

static struct json_object *run(const char *req, double timeout)
{
	char *text = NULL;
	struct pv_err err = {0};
	int rc = pv_agent_exec(shared.a, req, timeout, &text, &err);
	if (rc)
		fprintf(stderr, "# exec %s: %s\n", req, err.msg);
	assert_int_equal(rc, 0);
	struct json_object *r = json_tokener_parse(text);
	assert_non_null(r);
	free(text);
	return r;
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_int64(v);
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static int jnull(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) && v == NULL;
}

/* Output of a shell command (tests look from outside with ip, pgrep). */
static char *sh_out(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	static char buf[8192];
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		pclose(f);
	return buf;
}

/* Running (a zombie counts as gone). */
static int pid_alive(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* ---- exec ---- */

static void test_ping(void **state)
{
	(void)state;
	struct pv_err err = {0};
	assert_int_equal(pv_agent_ping(shared.a, 2000, &err), 0);
	assert_true(pv_agent_alive(shared.a));
}

static void test_exit_codes(void **state)
{
	(void)state;
	struct json_object *r = run("{\"cmd\": \"exit 3\"}", 0);
	assert_int_equal(jint(r, "exit_code"), 3);
	assert_string_equal(jstr(r, "status"), "exited");
	assert_true(jnull(r, "signal"));
	json_object_put(r);
	r = run("true", 0); /* a plain shell line works too */
	assert_int_equal(jint(r, "exit_code"), 0);
	json_object_put(r);
}

static void test_stdout_stderr(void **state)
{
	(void)state;
	struct json_object *r = run("{\"cmd\": \"echo out; echo oops >&2\"}", 0);
	assert_string_equal(jstr(r, "stdout"), "out\n");
	assert_string_equal(jstr(r, "stderr"), "oops\n");
	json_object_put(r);
}

static void test_stdin(void **state)
{
	(void)state;
	struct json_object *r = run("{\"cmd\": \"tr a-z A-Z\", \"stdin\": \"hello\\nworld\"}", 0);
	assert_string_equal(jstr(r, "stdout"), "HELLO\nWORLD");
	json_object_put(r);
}

static void test_env_cwd_argv(void **state)
{
	(void)state;
	char req[512];
	snprintf(req, sizeof(req), "{\"cmd\": \"echo $FOO $HOME; pwd\", \"env\": {\"FOO\": \"bar baz\"}, "
				   "\"cwd\": \"%s\"}", tmpdir);
	struct json_object *r = run(req, 0);
	char want[256];
	snprintf(want, sizeof(want), "bar baz /root\n%s\n", tmpdir);
	assert_string_equal(jstr(r, "stdout"), want);
	json_object_put(r);
	r = run("{\"argv\": [\"printf\", \"%s|\", \"a b\", \"$c\"]}", 0);
	assert_string_equal(jstr(r, "stdout"), "a b|$c|");
	json_object_put(r);
	r = run("{\"cmd\": \"pwd\"}", 0);
	assert_string_equal(jstr(r, "stdout"), "/\n");
	json_object_put(r);
}

static void test_cannot_start(void **state)
{
	(void)state;
	char *text = NULL;
	struct pv_err err = {0};
	assert_int_equal(pv_agent_exec(shared.a, "{\"argv\": [\"/nonexistent/pv-cmd\"]}", 0, &text, &err),
			 -ENOENT);
	assert_null(text);
	assert_non_null(strstr(err.msg, "cannot run"));
	assert_int_equal(pv_agent_exec(shared.a, "{\"cmd\": \"true\", \"cwd\": \"/nonexistent/dir\"}", 0,
				       &text, &err),
			 -ENOENT);
	assert_int_equal(pv_agent_exec(shared.a, "{\"cmd\": 5}", 0, &text, &err), -EINVAL);
}

static void test_timeout_kills_group(void **state)
{
	(void)state;
	char pidfile[128];
	snprintf(pidfile, sizeof(pidfile), "%s/bg.pid", tmpdir);
	char req[512];
	snprintf(req, sizeof(req), "{\"cmd\": \"sleep 30 & echo $$ $! > %s; sleep 30\"}", pidfile);
	double t0 = now_s();
	struct json_object *r = run(req, 0.5);
	double took = now_s() - t0;
	assert_string_equal(jstr(r, "status"), "timed_out");
	assert_int_equal(jint(r, "exit_code"), 137);
	assert_int_equal(jint(r, "signal"), 9);
	assert_true(took >= 0.45 && took < 3.0);
	json_object_put(r);
	/* the background sleep died with its group */
	FILE *f = fopen(pidfile, "r");
	assert_non_null(f);
	int main_pid = 0, bg = 0;
	assert_int_equal(fscanf(f, "%d %d", &main_pid, &bg), 2);
	fclose(f);
	int alive = 1;
	for (int i = 0; i < 50 && (alive = pid_alive(bg)); i++)
		usleep(20 * 1000);
	assert_false(alive);
	/* nothing at all is left of the command's process group */
	char *left = "?";
	for (int i = 0; i < 50 && *(left = sh_out("pgrep -g %d", main_pid)); i++)
		usleep(20 * 1000);
	assert_string_equal(left, "");
}

static void test_signalled(void **state)
{
	(void)state;
	struct json_object *r = run("{\"cmd\": \"kill -TERM $$\"}", 0);
	assert_string_equal(jstr(r, "status"), "signalled");
	assert_int_equal(jint(r, "exit_code"), 128 + SIGTERM);
	assert_int_equal(jint(r, "signal"), SIGTERM);
	json_object_put(r);
}

static void test_big_output(void **state)
{
	(void)state;
	struct json_object *r = run("{\"cmd\": \"head -c 1048576 /dev/zero | tr '\\\\0' a\"}", 0);
	struct json_object *v;
	assert_true(json_object_object_get_ex(r, "stdout", &v));
	assert_int_equal(json_object_get_string_len(v), 1048576);
	assert_int_equal(json_object_get_string(v)[1048575], 'a');
	json_object_put(r);
}

static void test_binary_output(void **state)
{
	(void)state;
	/* the client parsed the line, so it was valid JSON; check the repair too */
	struct json_object *r = run("{\"cmd\": \"head -c 65536 /dev/urandom; printf 'A\\\\377B\\\\000C'\"}", 0);
	struct json_object *v;
	assert_true(json_object_object_get_ex(r, "stdout", &v));
	const char *s = json_object_get_string(v);
	int len = json_object_get_string_len(v);
	assert_true(len >= 7);
	assert_memory_equal(s + len - 7, "A\xef\xbf\xbd" "B\0C", 7);
	json_object_put(r);
}

static void test_background_does_not_hold(void **state)
{
	(void)state;
	double t0 = now_s();
	struct json_object *r = run("{\"cmd\": \"sleep 20 & echo $!\"}", 0);
	assert_true(now_s() - t0 < 2.0);
	int bg = atoi(jstr(r, "stdout"));
	assert_true(bg > 1);
	kill(bg, SIGKILL); /* the test started it; the agent reaps it */
	json_object_put(r);
}

struct thread_call {
	const char *req;
	char *out;
	int rc;
	double done_at;
};

static void *call_thread(void *arg)
{
	struct thread_call *c = arg;
	struct pv_err err = {0};
	c->rc = pv_agent_exec(shared.a, c->req, 0, &c->out, &err);
	c->done_at = now_s();
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct thread_call slow = {.req = "{\"cmd\": \"sleep 1; echo slow\"}"};
	struct thread_call fast = {.req = "{\"cmd\": \"echo fast\"}"};
	pthread_t t1, t2;
	double t0 = now_s();
	assert_int_equal(pthread_create(&t1, NULL, call_thread, &slow), 0);
	usleep(100 * 1000);
	assert_int_equal(pthread_create(&t2, NULL, call_thread, &fast), 0);
	pthread_join(t2, NULL);
	pthread_join(t1, NULL);
	assert_int_equal(slow.rc, 0);
	assert_int_equal(fast.rc, 0);
	assert_non_null(strstr(slow.out, "\"slow\\n\""));
	assert_non_null(strstr(fast.out, "\"fast\\n\""));
	assert_true(fast.done_at - t0 < 0.8); /* not queued behind the sleep */
	assert_true(slow.done_at - t0 >= 1.0);
	free(slow.out);
	free(fast.out);
}

static void *net_wait_thread(void *arg)
{
	int *rc = arg;
	struct pv_err err = {0};
	*rc = pv_agent_call(shared.a, "net", "{\"nics\": [{\"mac\": \"52:54:00:00:00:98\"}], \"wait\": 2}", 10,
			    NULL, &err);
	return NULL;
}

/* A `net` waiting for a NIC must not hold a command's stdin open. */
static void test_net_wait_does_not_hold_exec(void **state)
{
	(void)state;
	/* more stdin than a pipe holds: the agent is still writing it when the
	 * net helper forks */
	size_t n = 300000;
	char *req = malloc(n + 100);
	assert_non_null(req);
	int off = sprintf(req, "{\"cmd\": \"sleep 0.3; wc -c\", \"stdin\": \"");
	memset(req + off, 'x', n);
	strcpy(req + off + n, "\"}");
	struct thread_call c = {.req = req};
	pthread_t t1, t2;
	int net_rc = 0;
	double t0 = now_s();
	assert_int_equal(pthread_create(&t1, NULL, call_thread, &c), 0);
	usleep(100 * 1000);
	assert_int_equal(pthread_create(&t2, NULL, net_wait_thread, &net_rc), 0);
	pthread_join(t1, NULL);
	double took = c.done_at - t0;
	pthread_join(t2, NULL);
	free(req);
	assert_int_equal(c.rc, 0);
	assert_non_null(strstr(c.out, "\"300000\\n\""));
	free(c.out);
	assert_true(took < 1.5);
	assert_int_equal(net_rc, -ENODEV);
}

struct stress {
	int n;
	int bad;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	for (int i = 0; i < 10; i++) {
		char req[128], want[64], *out = NULL;
		snprintf(req, sizeof(req), "{\"argv\": [\"echo\", \"t%d-%d\"]}", s->n, i);
		snprintf(want, sizeof(want), "\"stdout\":\"t%d-%d\\n\"", s->n, i);
		struct pv_err err = {0};
		if (pv_agent_exec(shared.a, req, 0, &out, &err) || !strstr(out, want))
			s->bad++;
		free(out);
	}
	return NULL;
}

/* Many callers on one connection: each gets its own answer. */
static void test_many_threads(void **state)
{
	(void)state;
	enum { N = 8 };
	struct stress s[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		s[i] = (struct stress){.n = i};
		assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].bad, 0);
	}
}

/* ---- files ---- */

static void test_files_roundtrip(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/data.bin", tmpdir);
	unsigned char data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	struct pv_err err = {0};
	assert_int_equal(pv_agent_write_file(shared.a, path, data, sizeof(data), 0600, &err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, sizeof(data));
	char *back = NULL;
	size_t len = 0;
	assert_int_equal(pv_agent_read_file(shared.a, path, &back, &len, &err), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	free(back);
	/* empty file, and replacing keeps working */
	assert_int_equal(pv_agent_write_file(shared.a, path, "", 0, 0644, &err), 0);
	assert_int_equal(pv_agent_read_file(shared.a, path, &back, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(back, "");
	free(back);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(pv_agent_read_file(shared.a, path, &back, &len, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(pv_agent_read_file(shared.a, "relative", &back, &len, &err), -EINVAL);
}

static void test_net_hosts(void **state)
{
	(void)state;
	const char *hosts = "127.0.0.1 localhost\n10.77.1.2 a.lan\n10.77.1.3 b.lan\n";
	struct pv_err err = {0};
	assert_int_equal(pv_agent_net(shared.a, NULL, 0, hosts, NULL, &err), 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/hosts", tmpdir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char buf[256] = {0};
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf, hosts);
	/* a changed membership replaces the file whole */
	assert_int_equal(pv_agent_net(shared.a, NULL, 0, "127.0.0.1 localhost\n", NULL, &err), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf, "127.0.0.1 localhost\n");
}

static void test_errors(void **state)
{
	(void)state;
	struct pv_err err = {0};
	char *res = NULL;
	assert_int_equal(pv_agent_call(shared.a, "frobnicate", NULL, 5, &res, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "unknown op"));
	/* not PID 1: the agent must never power off the machine running the tests */
	assert_int_equal(pv_agent_shutdown(shared.a, &err), -EPERM);
	assert_true(pv_agent_alive(shared.a));
}

/* ---- NICs in a namespace ---- */

struct netns_fixture {
	char ns[32], host_end[16], guest_end[16], clash_peer[16], late[16], late_peer[16];
	struct agent_proc ag;
};

static void netns_cleanup(struct netns_fixture *f)
{
	agent_stop(&f->ag);
	sh("ip netns del %s 2>/dev/null", f->ns);
	sh("ip link del %s 2>/dev/null", f->host_end);
	sh("ip link del %s 2>/dev/null", f->late);
}

static int netns_make(struct netns_fixture *f)
{
	int pid = (int)getpid();
	snprintf(f->ns, sizeof(f->ns), "pvag%d", pid);
	snprintf(f->host_end, sizeof(f->host_end), "pva%d", pid);
	snprintf(f->guest_end, sizeof(f->guest_end), "pvb%d", pid);
	snprintf(f->clash_peer, sizeof(f->clash_peer), "pvc%d", pid);
	snprintf(f->late, sizeof(f->late), "pvd%d", pid);
	snprintf(f->late_peer, sizeof(f->late_peer), "pve%d", pid);
	if (sh("ip netns add %s", f->ns) ||
	    sh("ip link add %s type veth peer name %s", f->host_end, f->guest_end) ||
	    sh("ip link set %s netns %s", f->guest_end, f->ns) ||
	    sh("ip -n %s link set %s address 52:54:00:ab:cd:ef", f->ns, f->guest_end) ||
	    sh("ip -n %s addr add 192.0.2.9/24 dev %s", f->ns, f->guest_end) ||
	    /* an interface already called eth7: the agent must move it aside */
	    sh("ip -n %s link add eth7 type veth peer name %s", f->ns, f->clash_peer))
		return -1;
	return 0;
}

static void test_net_nic(void **state)
{
	(void)state;
	if (geteuid() != 0 || sh("ip -V >/dev/null 2>&1"))
		skip();
	struct netns_fixture f = {0};
	if (netns_make(&f) || agent_start(&f.ag, f.ns)) {
		netns_cleanup(&f);
		fail_msg("could not set up netns %s with the agent in it", f.ns);
	}
	struct pv_agent_nic nic = {.mac = "52:54:00:ab:cd:ef", .ifname = "eth7", .cidr = "10.77.1.2/24", .up = 1};
	struct pv_err err = {0};
	int rc = pv_agent_net(f.ag.a, &nic, 1, "127.0.0.1 localhost\n", "10.77.1.1", &err);
	if (rc)
		fprintf(stderr, "# net: %s\n", err.msg);
	char link[2048], addr[2048], route[512];
	snprintf(link, sizeof(link), "%s", sh_out("ip -n %s -o link show eth7", f.ns));
	snprintf(addr, sizeof(addr), "%s", sh_out("ip -n %s -o -4 addr show dev eth7", f.ns));
	snprintf(route, sizeof(route), "%s", sh_out("ip -n %s route show default", f.ns));

	/* a NIC that is hot-plugged a moment after the request is waited for */
	sh("(sleep 0.7; ip link add %s type veth peer name %s address 52:54:00:ab:cd:f0 netns %s) &",
	   f.late, f.late_peer, f.ns);
	struct pv_agent_nic late = {.mac = "52:54:00:ab:cd:f0", .ifname = "eth8", .cidr = "10.77.2.2/24", .up = 1};
	struct pv_err err2 = {0};
	double t0 = now_s();
	int rc2 = pv_agent_net(f.ag.a, &late, 1, NULL, NULL, &err2);
	double took = now_s() - t0;
	char late_addr[1024];
	snprintf(late_addr, sizeof(late_addr), "%s", sh_out("ip -n %s -o -4 addr show dev eth8", f.ns));

	/* a NIC that never comes: ENODEV with the MAC in the message */
	struct pv_err err3 = {0};
	int rc3 = pv_agent_call(f.ag.a, "net",
				"{\"nics\": [{\"mac\": \"52:54:00:00:00:99\", \"ifname\": \"eth9\"}], \"wait\": 0.3}",
				10, NULL, &err3);
	netns_cleanup(&f);

	assert_int_equal(rc, 0);
	assert_non_null(strstr(link, "52:54:00:ab:cd:ef"));
	assert_non_null(strstr(link, ",UP"));
	assert_non_null(strstr(addr, "10.77.1.2/24"));
	assert_null(strstr(addr, "192.0.2.9"));
	assert_non_null(strstr(route, "via 10.77.1.1 dev eth7"));
	assert_int_equal(rc2, 0);
	assert_true(took >= 0.5 && took < 8);
	assert_non_null(strstr(late_addr, "10.77.2.2/24"));
	assert_int_equal(rc3, -ENODEV);
	assert_non_null(strstr(err3.msg, "52:54:00:00:00:99"));
}

/* ---- as PID 1 (of a PID namespace) ---- */

static void test_pid1(void **state)
{
	(void)state;
	if (geteuid() != 0 || sh("unshare --version >/dev/null 2>&1"))
		skip();
	/* --kill-child: killing unshare takes the agent with it */
	const char *const pidns[] = {"unshare", "--pid", "--kill-child", "--mount-proc", NULL};
	struct agent_proc p = {0};
	assert_int_equal(agent_start_with(&p, pidns), 0);
	char *out = NULL;
	struct pv_err err = {0};
	int rc = pv_agent_exec(p.a, "echo $PPID; sleep 0.2 & exit 0", 0, &out, &err);
	int is_pid1 = out && strstr(out, "\"stdout\":\"1\\n\"") != NULL;
	free(out);
	out = NULL;
	usleep(500 * 1000);
	/* the orphaned sleep exited meanwhile: PID 1 must have reaped it */
	int rc2 = pv_agent_exec(p.a, "for f in /proc/[0-9]*/stat; do read -r l < $f; "
				     "case $l in *') Z '*) echo zombie;; esac; done; echo end", 0, &out, &err);
	int no_zombie = out && strstr(out, "\"stdout\":\"end\\n\"") != NULL;
	free(out);
	/* shutdown in a PID namespace ends only that namespace (reboot(2) sends
	 * its init SIGKILL); the agent refuses anyway unless it is PID 1 */
	int rc3 = is_pid1 ? pv_agent_shutdown(p.a, &err) : -1;
	int status = 0, gone = 0;
	for (int i = 0; i < 300 && is_pid1 && !gone; i++) {
		gone = waitpid(p.pid, &status, WNOHANG) == p.pid;
		if (!gone)
			usleep(10 * 1000);
	}
	if (gone)
		p.pid = 0;
	agent_stop(&p);
	assert_int_equal(rc, 0);
	assert_true(is_pid1);
	assert_int_equal(rc2, 0);
	assert_true(no_zombie);
	assert_int_equal(rc3, 0);
	assert_true(gone);
}

/* ---- --port: a character device opened by path (a raw pty stands in for
 * the virtio-serial port) ---- */

static void test_port_mode(void **state)
{
	(void)state;
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(m >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	char slave[64];
	assert_int_equal(ptsname_r(m, slave, sizeof(slave)), 0);
	/* raw, so the line discipline passes bytes as they are */
	int sfd = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(sfd >= 0);
	struct termios t;
	assert_int_equal(tcgetattr(sfd, &t), 0);
	cfmakeraw(&t);
	assert_int_equal(tcsetattr(sfd, TCSANOW, &t), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0)
			dup2(dn, 2);
		execl(agent_bin, agent_bin, "--port", slave, "--etc", tmpdir, (char *)NULL);
		_exit(127);
	}
	struct agent_proc p = {.pid = pid};
	struct pv_err err = {0};
	int rc = pv_agent_from_fd(m, 5000, &p.a, &err);
	close(sfd);
	char *out = NULL;
	int rc2 = rc ? rc : pv_agent_exec(p.a, "{\"argv\": [\"echo\", \"over the port\"]}", 0, &out, &err);
	agent_stop(&p);
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
	assert_non_null(strstr(out, "\"over the port\\n\""));
	free(out);
}

/* ---- a dying agent ---- */

struct killer {
	pid_t pid;
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;
	usleep(300 * 1000);
	kill(k->pid, SIGKILL);
	return NULL;
}

static void test_agent_killed(void **state)
{
	(void)state;
	struct agent_proc p = {0};
	assert_int_equal(agent_start(&p, NULL), 0);
	char pidfile[128], req[256];
	snprintf(pidfile, sizeof(pidfile), "%s/orphan.pid", tmpdir);
	snprintf(req, sizeof(req), "{\"cmd\": \"echo $$ > %s; exec sleep 30\"}", pidfile);
	struct killer k = {p.pid};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kill_later, &k), 0);
	char *out = NULL;
	struct pv_err err = {0};
	double t0 = now_s();
	int rc = pv_agent_exec(p.a, req, 0, &out, &err);
	double took = now_s() - t0;
	pthread_join(t, NULL);
	/* the orphaned sleep is ours to end */
	FILE *f = fopen(pidfile, "r");
	int orphan = 0;
	if (f) {
		if (fscanf(f, "%d", &orphan) == 1 && orphan > 1) {
			kill(orphan, SIGKILL);
			waitpid(orphan, NULL, 0);
		}
		fclose(f);
	}
	assert_int_equal(rc, -ECONNRESET);
	assert_true(took < 1.5);
	assert_false(pv_agent_alive(p.a));
	t0 = now_s();
	assert_int_equal(pv_agent_ping(p.a, 5000, &err), -ECONNRESET);
	assert_true(now_s() - t0 < 0.1);
	assert_non_null(strstr(err.msg, "gone"));
	agent_stop(&p);
}

/* ---- connecting to a unix socket that appears late (QEMU's chardev) ---- */

struct late_server {
	char path[100]; /* fits sun_path */
	pid_t agent;
	int rc;
};

static void *serve_late(void *arg)
{
	struct late_server *s = arg;
	usleep(300 * 1000);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1)) {
		s->rc = -1;
		return NULL;
	}
	int c = accept(l, NULL, NULL);
	close(l);
	if (c < 0) {
		s->rc = -1;
		return NULL;
	}
	usleep(300 * 1000); /* the guest's agent starts later still */
	s->agent = fork();
	if (s->agent == 0) {
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0)
			dup2(dn, 2);
		char fd[16];
		fcntl(c, F_SETFD, 0);
		snprintf(fd, sizeof(fd), "%d", c);
		execl(agent_bin, agent_bin, "--fd", fd, "--etc", tmpdir, (char *)NULL);
		_exit(127);
	}
	close(c);
	return NULL;
}

static void test_connect_late_socket(void **state)
{
	(void)state;
	struct late_server s = {0};
	snprintf(s.path, sizeof(s.path), "%s/agent.sock", tmpdir);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, serve_late, &s), 0);
	struct pv_agent *a = NULL;
	struct pv_err err = {0};
	double t0 = now_s();
	int rc = pv_agent_connect(s.path, 5000, &a, &err);
	double took = now_s() - t0;
	pthread_join(t, NULL);
	char *out = NULL;
	int rc2 = rc ? rc : pv_agent_exec(a, "echo hi", 0, &out, &err);
	pv_agent_close(a);
	if (s.agent > 0) {
		kill(s.agent, SIGKILL);
		waitpid(s.agent, NULL, 0);
	}
	unlink(s.path);
	assert_int_equal(s.rc, 0);
	assert_int_equal(rc, 0);
	assert_true(took >= 0.5 && took < 4);
	assert_int_equal(rc2, 0);
	assert_non_null(strstr(out, "\"hi\\n\""));
	free(out);
	/* nothing there at all: the connect error, once the timeout ran out */
	t0 = now_s();
	assert_int_equal(pv_agent_connect(s.path, 300, &a, &err), -ENOENT);
	assert_true(now_s() - t0 < 1.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_stdout_stderr),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_env_cwd_argv),
		cmocka_unit_test(test_cannot_start),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_signalled),
		cmocka_unit_test(test_big_output),
		cmocka_unit_test(test_binary_output),
		cmocka_unit_test(test_background_does_not_hold),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_many_threads),
		cmocka_unit_test(test_net_wait_does_not_hold_exec),
		cmocka_unit_test(test_files_roundtrip),
		cmocka_unit_test(test_net_hosts),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_net_nic),
		cmocka_unit_test(test_pid1),
		cmocka_unit_test(test_port_mode),
		cmocka_unit_test(test_agent_killed),
		cmocka_unit_test(test_connect_late_socket),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
