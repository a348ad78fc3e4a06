/* qmp/: argv building (pure), the accelerator probe, and a real QEMU (TCG, no
 * guest kernel: SeaBIOS idles) started inside a fresh network namespace. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/shell.h"

#include "qmp/accel.h"
#include "qmp/qemu.h"
#include "qmp/qmp.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- argv (no QEMU) ---- */

/* Index of the first `opt` followed by `val`, or -1. */
static int find_pair(char **argv, const char *opt, const char *val)
{
	for (int i = 0; argv[i] && argv[i + 1]; i++)
		if (!strcmp(argv[i], opt) && !strcmp(argv[i + 1], val))
			return i;
	return -1;
}

static int find_arg(char **argv, const char *a)
{
	for (int i = 0; argv[i]; i++)
		if (!strcmp(argv[i], a))
			return i;
	return -1;
}

static const struct pv_qemu_nic two_nics[] = {
	{"n0", "pvt0", "52:54:00:00:00:01"},
	{"n1", "pvt1", "52:54:00:00:00:02"},
};

static void test_argv_full(void **state)
{
	(void)state;
	struct pv_qemu_virtfs fs[] = {{"/usr", "usr"}, {"/srv/a,b", "ab"}};
	struct pv_qemu_spec s = {
		.name = "a", .kernel = "/k/vmlinuz", .initrd = "/k/initrd",
		.cmdline = "console=ttyS0 quiet", .memory_mb = 512, .cpus = 2,
		.accel = PV_ACCEL_TCG, .run_dir = "/run/provium/lab1/a",
		.virtfs = fs, .n_virtfs = 2, .nics = two_nics, .n_nics = 2,
	};
	char **argv = NULL;
	struct pv_err e = {0};
	assert_int_equal(pv_qemu_argv(&s, &argv, &e), 0);
	assert_string_equal(argv[0], "qemu-system-x86_64");
	assert_true(find_pair(argv, "-machine", "pc") > 0);
	assert_true(find_pair(argv, "-accel", "tcg") > 0);
	assert_true(find_arg(argv, "-cpu") < 0);
	assert_true(find_pair(argv, "-m", "512") > 0);
	assert_true(find_pair(argv, "-smp", "2") > 0);
	assert_true(find_arg(argv, "-nodefaults") > 0);
	assert_true(find_arg(argv, "-no-user-config") > 0);
	assert_true(find_pair(argv, "-display", "none") > 0);
	assert_true(find_arg(argv, "-S") < 0);
	assert_true(find_pair(argv, "-chardev", "socket,id=qmp,path=/run/provium/lab1/a/qmp.sock,server=on,wait=off") > 0);
	assert_true(find_pair(argv, "-mon", "chardev=qmp,mode=control") > 0);
	assert_true(find_pair(argv, "-chardev", "file,id=console,path=/run/provium/lab1/a/console.log,append=on") > 0);
	assert_true(find_pair(argv, "-serial", "chardev:console") > 0);
	assert_true(find_pair(argv, "-chardev", "socket,id=agent,path=/run/provium/lab1/a/agent.sock,server=on,wait=off") > 0);
	assert_true(find_pair(argv, "-device", "virtio-serial-pci,id=vser0") > 0);
	assert_true(find_pair(argv, "-device", "virtserialport,bus=vser0.0,chardev=agent,name=org.provium.agent") > 0);
	assert_true(find_pair(argv, "-kernel", "/k/vmlinuz") > 0);
	assert_true(find_pair(argv, "-initrd", "/k/initrd") > 0);
	assert_true(find_pair(argv, "-append", "console=ttyS0 quiet") > 0);
	assert_true(find_pair(argv, "-virtfs", "local,path=/usr,mount_tag=usr,security_model=none,readonly=on,multidevs=remap") > 0);
	/* a comma in a path is doubled, QEMU's escape */
	assert_true(find_pair(argv, "-virtfs", "local,path=/srv/a,,b,mount_tag=ab,security_model=none,readonly=on,multidevs=remap") > 0);
	int t0 = find_pair(argv, "-netdev", "tap,id=n0-net,ifname=pvt0,script=no,downscript=no");
	int d0 = find_pair(argv, "-device", "virtio-net-pci,netdev=n0-net,mac=52:54:00:00:00:01,id=n0");
	int t1 = find_pair(argv, "-netdev", "tap,id=n1-net,ifname=pvt1,script=no,downscript=no");
	int d1 = find_pair(argv, "-device", "virtio-net-pci,netdev=n1-net,mac=52:54:00:00:00:02,id=n1");
	assert_true(t0 > 0 && d0 > t0 && t1 > d0 && d1 > t1); /* order = guest probe order */
	pv_qemu_argv_free(argv);

	s.accel = PV_ACCEL_KVM;
	s.paused = true;
	s.console_log = "/tmp/c.log";
	s.kernel = s.initrd = s.cmdline = NULL;
	assert_int_equal(pv_qemu_argv(&s, &argv, &e), 0);
	assert_true(find_pair(argv, "-accel", "kvm") > 0);
	assert_true(find_pair(argv, "-cpu", "host") > 0);
	assert_true(find_arg(argv, "-S") > 0);
	assert_true(find_arg(argv, "-kernel") < 0);
	assert_true(find_pair(argv, "-chardev", "file,id=console,path=/tmp/c.log,append=on") > 0);
	pv_qemu_argv_free(argv);
}

static void expect_reject(struct pv_qemu_spec *s, int code, const char *needle)
{
	char **argv = NULL;
	struct pv_err e = {0};
	assert_int_equal(pv_qemu_argv(s, &argv, &e), -code);
	assert_null(argv);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, needle))
		fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void test_argv_rejects(void **state)
{
	(void)state;
	struct pv_qemu_nic nic = {"n0", "pvt0", "52:54:00:00:00:01"};
	struct pv_qemu_spec s = {.name = "a", .run_dir = "/run/x", .nics = &nic, .n_nics = 1};
	nic.mac = "01:00:5e:00:00:01";
	expect_reject(&s, EINVAL, "01:00:5e:00:00:01");
	nic.mac = "52:54:00:00:00";
	expect_reject(&s, EINVAL, "MAC");
	nic.mac = "52:54:00:00:00:01";
	nic.id = "0bad";
	expect_reject(&s, EINVAL, "'0bad'");
	nic.id = "n0";
	nic.ifname = "a-name-far-too-long";
	expect_reject(&s, EINVAL, "a-name-far-too-long");
	nic.ifname = "pvt0";
	s.run_dir = "run/x";
	expect_reject(&s, EINVAL, "run_dir");
	char longdir[120];
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	s.run_dir = longdir;
	expect_reject(&s, ENAMETOOLONG, "shorter");
	s.run_dir = "/run/x";
	s.cmdline = "quiet";
	expect_reject(&s, EINVAL, "kernel");
	s.cmdline = NULL;
	struct pv_qemu_nic dup[] = {{"n0", "pvt0", "52:54:00:00:00:01"},
				    {"n0", "pvt1", "52:54:00:00:00:02"}};
	s.nics = dup;
	s.n_nics = 2;
	expect_reject(&s, EEXIST, "n0");
}

/* ---- accelerator ---- */

static void test_accel_probe(void **state)
{
	(void)state;
	char why[200] = "";
	long long t0 = now_ms();
	enum pv_accel a = pv_accel_probe(why, sizeof(why));
	printf("# accel: %s (%s) in %lld ms\n", pv_accel_name(a), why, now_ms() - t0);
	assert_true(strlen(why) > 0);
	assert_true(strstr(why, pv_accel_name(a)) != NULL);
	/* this project's machines: kvm_pvm /dev/kvm, no vmx/svm */
	assert_int_equal(a, PV_ACCEL_TCG);

	/* the /dev/kvm half alone must answer, whatever it answers, and in time */
	why[0] = '\0';
	t0 = now_ms();
	int rc = pv_accel_probe_kvm(1000, why, sizeof(why));
	long long dt = now_ms() - t0;
	printf("# kvm probe: rc %d (%s) in %lld ms\n", rc, why, dt);
	assert_true(strlen(why) > 0);
	assert_true(dt < 2500);
}

/* ---- QMP client alone ---- */

static void test_qmp_connect_timeout(void **state)
{
	(void)state;
	struct pv_qmp *q = NULL;
	struct pv_err e = {0};
	long long t0 = now_ms();
	int rc = pv_qmp_connect("/tmp/pv-qmp-none.sock", 200, &q, &e);
	long long dt = now_ms() - t0;
	assert_int_equal(rc, -ETIMEDOUT);
	assert_null(q);
	assert_true(strstr(e.msg, "/tmp/pv-qmp-none.sock") != NULL);
	assert_true(dt >= 190 && dt < 1000);
}

/* ---- a real QEMU in a namespace ---- */

struct fx {
	char ns[32];
	int saved_ns;
	char run[64];
	char tap0[16], tap1[16];
	struct pv_qemu *vm;
	long long start_ms;
};
static struct fx F = {.saved_ns = -1};

static int group_setup(void **state)
{
	(void)state;
	snprintf(F.ns, sizeof(F.ns), "pvqmp%d", (int)getpid());
	snprintf(F.run, sizeof(F.run), "/tmp/provium-qmp-%d", (int)getpid());
	snprintf(F.tap0, sizeof(F.tap0), "pvq%da", (int)getpid());
	snprintf(F.tap1, sizeof(F.tap1), "pvq%db", (int)getpid());
	if (sh("ip netns add %s", F.ns) != 0)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "/run/netns/%s", F.ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	F.saved_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || F.saved_ns < 0 || setns(fd, CLONE_NEWNET) < 0) {
		if (fd >= 0)
			close(fd);
		sh("ip netns delete %s", F.ns);
		return -1;
	}
	close(fd);
	mkdir(F.run, 0700);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pv_qemu_free(F.vm);
	F.vm = NULL;
	if (F.saved_ns >= 0) {
		setns(F.saved_ns, CLONE_NEWNET);
		close(F.saved_ns);
	}
	sh("ip netns delete %s 2>/dev/null", F.ns);
	sh("rm -rf %s", F.run);
	return 0;
}

static int vm_start(void **state)
{
	(void)state;
	struct pv_qemu_nic nic = {"n0", F.tap0, "52:54:00:12:34:01"};
	struct pv_qemu_spec s = {
		.name = "pvqmp", .accel = PV_ACCEL_TCG, .memory_mb = 128,
		.run_dir = F.run, .nics = &nic, .n_nics = 1, .unplug_timeout_ms = 1000,
	};
	struct pv_err e = {0};
	long long t0 = now_ms();
	int rc = pv_qemu_start(&s, &F.vm, &e);
	F.start_ms = now_ms() - t0;
	if (rc < 0) {
		fprintf(stderr, "# pv_qemu_start: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int vm_stop(void **state)
{
	(void)state;
	pv_qemu_free(F.vm);
	F.vm = NULL;
	return 0;
}

static long vm_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static json_object *cmd_ok(const char *name, json_object *args)
{
	json_object *ret = NULL;
	struct pv_err e = {0};
	int rc = pv_qemu_command(F.vm, name, args, 3000, &ret, &e);
	if (rc < 0)
		fail_msg("%s: %d %s", name, rc, e.msg);
	return ret;
}

static void count_event(const char *ev, json_object *data, void *arg)
{
	(void)data;
	if (ev && !strcmp(ev, "STOP"))
		++*(int *)arg;
}

static void test_vm_basics(void **state)
{
	(void)state;
	printf("# qemu start to QMP ready: %lld ms\n", F.start_ms);
	assert_int_equal(sh("ip -n %s link show %s >/dev/null", F.ns, F.tap0), 0);
	json_object *st = cmd_ok("query-status", NULL);
	json_object *v;
	assert_true(json_object_object_get_ex(st, "status", &v));
	assert_string_equal(json_object_get_string(v), "running");
	json_object_put(st);

	/* a QMP error carries QEMU's desc and a fitting errno */
	struct pv_err e = {0};
	json_object *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_string("nosuch"));
	assert_int_equal(pv_qemu_command(F.vm, "device_del", a, 3000, NULL, &e), -ENOENT);
	json_object_put(a);
	assert_true(strstr(e.msg, "nosuch") != NULL);
	assert_int_equal(pv_qemu_command(F.vm, "no-such-command", NULL, 3000, NULL, &e),
			 -EOPNOTSUPP);

	/* events arriving around a command are queued, then polled */
	json_object_put(cmd_ok("stop", NULL));
	int stops = 0;
	for (int i = 0; i < 50 && !stops; i++) {
		assert_true(pv_qemu_poll_events(F.vm, count_event, &stops) >= 0);
		if (!stops)
			usleep(10000);
	}
	assert_int_equal(stops, 1);
	json_object_put(cmd_ok("cont", NULL));

	usleep(300000); /* SeaBIOS has run and idles */
	printf("# idle QEMU (TCG, 128 MiB, SeaBIOS, no disk) VmRSS: %ld kB\n",
	       vm_rss_kb(pv_qemu_pid(F.vm)));
	assert_true(pv_qemu_alive(F.vm));
}

static int pci_has(const char *qdev_id)
{
	json_object *r = cmd_ok("query-pci", NULL);
	int found = 0;
	for (size_t b = 0; b < json_object_array_length(r); b++) {
		json_object *devs;
		if (!json_object_object_get_ex(json_object_array_get_idx(r, b), "devices", &devs))
			continue;
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			json_object *id;
			if (json_object_object_get_ex(json_object_array_get_idx(devs, i),
						      "qdev_id", &id) &&
			    !strcmp(json_object_get_string(id), qdev_id))
				found = 1;
		}
	}
	json_object_put(r);
	return found;
}

static void test_vm_hotplug(void **state)
{
	(void)state;
	struct pv_err e = {0};
	long long t0 = now_ms();
	int rc = pv_qemu_nic_add(F.vm, "n1", F.tap1, "52:54:00:12:34:02", &e);
	if (rc < 0)
		fail_msg("nic_add: %s", e.msg);
	printf("# hot-plug (netdev_add + device_add): %lld ms\n", now_ms() - t0);
	assert_int_equal(sh("ip -n %s link show %s >/dev/null", F.ns, F.tap1), 0);
	assert_true(pci_has("n1"));
	assert_true(pci_has("n0"));

	/* same id again: refused, and the second TAP was not left behind */
	assert_int_equal(pv_qemu_nic_add(F.vm, "n1", "pvqdup", "52:54:00:12:34:03", &e),
			 -EEXIST);
	assert_true(strstr(e.msg, "n1") != NULL);
	assert_int_not_equal(sh("ip -n %s link show pvqdup >/dev/null 2>&1", F.ns), 0);

	/* QEMU 7.2 shows link state nowhere in QMP or `info network`: accepted is
	 * what can be checked without a guest (the guest sees carrier loss) */
	assert_int_equal(pv_qemu_set_link(F.vm, "n1", false, &e), 0);
	assert_int_equal(pv_qemu_set_link(F.vm, "n1", true, &e), 0);
	assert_int_equal(pv_qemu_set_link(F.vm, "nosuch", false, &e), -ENOENT);

	/* no OS to eject it: the wait times out, the host side is still cleaned */
	t0 = now_ms();
	rc = pv_qemu_nic_del(F.vm, "n1", &e);
	printf("# nic_del: rc %d after %lld ms: %s\n", rc, now_ms() - t0, rc ? e.msg : "ok");
	assert_true(rc == 0 || rc == -ETIMEDOUT);
	assert_int_not_equal(sh("ip -n %s link show %s >/dev/null 2>&1", F.ns, F.tap1), 0);
	assert_true(pv_qemu_alive(F.vm));
	json_object_put(cmd_ok("query-status", NULL));
}

static void test_vm_killed(void **state)
{
	(void)state;
	pid_t pid = pv_qemu_pid(F.vm);
	long long t0 = now_ms();
	assert_int_equal(kill(pid, SIGKILL), 0);
	/* what a daemon's event thread sees: the QMP fd and the pidfd wake up */
	struct pollfd p[2] = {{.fd = pv_qemu_qmp_fd(F.vm), .events = POLLIN},
			      {.fd = pv_qemu_exit_fd(F.vm), .events = POLLIN}};
	while ((!p[0].revents || !p[1].revents) && now_ms() - t0 < 1000)
		poll(p, 2, 100);
	assert_true(p[0].revents && p[1].revents);
	assert_int_equal(pv_qemu_poll_events(F.vm, NULL, NULL), -ECONNRESET);
	struct pv_err e = {0};
	int rc = pv_qemu_command(F.vm, "query-status", NULL, 3000, NULL, &e);
	assert_int_equal(rc, -ECONNRESET);
	assert_true(strstr(e.msg, "qmp.sock") != NULL);
	while (pv_qemu_alive(F.vm) && now_ms() - t0 < 1000)
		usleep(5000);
	long long dt = now_ms() - t0;
	printf("# SIGKILL to ECONNRESET and dead: %lld ms (%s)\n", dt, e.msg);
	assert_false(pv_qemu_alive(F.vm));
	assert_true(dt < 1000);
	int status = 0;
	assert_true(pv_qemu_exit_status(F.vm, &status));
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* later calls fail the same way, at once */
	assert_int_equal(pv_qemu_nic_add(F.vm, "n2", "pvqx", "52:54:00:12:34:09", &e),
			 -ECONNRESET);
}

static void test_vm_stop(void **state)
{
	(void)state;
	pid_t pid = pv_qemu_pid(F.vm);
	long long t0 = now_ms();
	int rc = pv_qemu_stop(F.vm, 500);
	printf("# stop with 500 ms grace (no OS: quit after grace): rc %d in %lld ms\n", rc,
	       now_ms() - t0);
	assert_int_equal(rc, 0);
	assert_false(pv_qemu_alive(F.vm));
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_not_equal(sh("ip -n %s link show %s >/dev/null 2>&1", F.ns, F.tap0), 0);
}

static void test_start_fails(void **state)
{
	(void)state;
	struct pv_qemu_spec s = {
		.name = "pvbad", .kernel = "/nonexistent/vmlinuz", .run_dir = F.run,
	};
	struct pv_qemu *vm = NULL;
	struct pv_err e = {0};
	long long t0 = now_ms();
	int rc = pv_qemu_start(&s, &vm, &e);
	printf("# failed start noticed in %lld ms: %s\n", now_ms() - t0, e.msg);
	assert_int_equal(rc, -ECHILD);
	assert_null(vm);
	assert_true(strstr(e.msg, "/nonexistent/vmlinuz") != NULL);
	assert_true(now_ms() - t0 < 5000);

	s.kernel = NULL;
	s.qemu = "/nonexistent/qemu";
	assert_true(pv_qemu_start(&s, &vm, &e) < 0);
	assert_null(vm);
	assert_true(strstr(e.msg, "/nonexistent/qemu") != NULL);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_argv_full),
		cmocka_unit_test(test_argv_rejects),
		cmocka_unit_test(test_accel_probe),
		cmocka_unit_test(test_qmp_connect_timeout),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test_setup_teardown(test_vm_basics, vm_start, vm_stop),
		cmocka_unit_test_setup_teardown(test_vm_hotplug, vm_start, vm_stop),
		cmocka_unit_test_setup_teardown(test_vm_killed, vm_start, vm_stop),
		cmocka_unit_test_setup_teardown(test_vm_stop, vm_start, vm_stop),
		cmocka_unit_test(test_start_fails),
	};
	int fails = cmocka_run_group_tests_name("qmp", pure, NULL, NULL);
	fails += cmocka_run_group_tests_name("qemu", live, group_setup, group_teardown);
	return fails ? 1 : 0;
}
