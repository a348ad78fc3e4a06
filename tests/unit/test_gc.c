/* Unit tests of crash cleanup (pv_gc): what a dead daemon left under a
 * temporary root is removed, a live daemon's lab is left alone. Namespaces
 * are checked only as root; everything made here is removed in teardown. */
/* cmocka.h needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netcore/lab.h"
#include "netcore/netns.h"

struct fixture {
	char root[64];
	char lab[32], other[32];
	pid_t fake; /* a process named provium-labd, or 0 */
};

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* A dead daemon's leftovers for `lab`: journal (pid `pid`), mount dir and
 * node files. */
static void leftovers(struct fixture *f, const char *lab, int pid)
{
	char p[256], text[512];
	snprintf(p, sizeof(p), "%s/%s", f->root, lab);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(text, sizeof(text), "{\"pid\": %d, \"mount\": \"%s/%s\"}", pid, f->root, lab);
	pv_journal_path(f->root, lab, p, sizeof(p));
	put_file(p, text);
	snprintf(p, sizeof(p), "%s/.state/%s", f->root, lab);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/.state/%s/a.hosts", f->root, lab);
	put_file(p, "127.0.0.1\tlocalhost\n");
}

static bool left(struct fixture *f, const char *lab)
{
	char p[256];
	pv_journal_path(f->root, lab, p, sizeof(p));
	bool any = exists(p);
	snprintf(p, sizeof(p), "%s/%s", f->root, lab);
	any |= exists(p);
	snprintf(p, sizeof(p), "%s/.state/%s", f->root, lab);
	return any | exists(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/pvgc-%d", (int)getpid());
	snprintf(f->lab, sizeof(f->lab), "pvgc%d", (int)getpid());
	snprintf(f->other, sizeof(f->other), "pvgc%dx", (int)getpid());
	char p[128];
	snprintf(p, sizeof(p), "%s/.state", f->root);
	if (mkdir(f->root, 0755) || mkdir(p, 0700)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void drop_netns(const char *lab)
{
	char name[64];
	pv_lab_netns_name(lab, name, sizeof(name));
	pv_netns_delete(name);
	pv_node_netns_name(lab, "a", name, sizeof(name));
	pv_netns_delete(name);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->fake > 0) {
		kill(f->fake, SIGKILL);
		waitpid(f->fake, NULL, 0);
	}
	if (geteuid() == 0) {
		drop_netns(f->lab);
		drop_netns(f->other);
	}
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void test_gc_dead_daemon(void **state)
{
	struct fixture *f = *state;
	struct pv_err err;
	pv_err_clear(&err);
	/* pid 0x7fffffff cannot exist; our own pid is not a provium-labd */
	leftovers(f, f->lab, 0x7fffffff);
	leftovers(f, f->other, (int)getpid());
	assert_int_equal(pv_gc(f->root, f->lab, &err), 0);
	assert_false(left(f, f->lab));
	assert_true(left(f, f->other)); /* only the named lab */
	assert_int_equal(pv_gc(f->root, f->other, &err), 0);
	assert_false(left(f, f->other));
	/* nothing left: a second run is a no-op */
	assert_int_equal(pv_gc(f->root, f->lab, &err), 0);
}

static void test_gc_no_journal(void **state)
{
	struct fixture *f = *state;
	struct pv_err err;
	pv_err_clear(&err);
	leftovers(f, f->lab, 0x7fffffff);
	char p[256];
	pv_journal_path(f->root, f->lab, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(pv_gc(f->root, f->lab, &err), 0);
	assert_false(left(f, f->lab));
}

static void test_gc_bad_name(void **state)
{
	struct fixture *f = *state;
	struct pv_err err;
	pv_err_clear(&err);
	assert_int_equal(pv_gc(f->root, "../etc", &err), -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_null(strchr(err.msg, '\n'));
	assert_int_equal(pv_gc(f->root, "", &err), -EINVAL);
}

/* A process named provium-labd holding the journal's pid. */
/* A daemon holds its lab's lock for as long as it lives. */
static pid_t fake_daemon(const char *root, const char *lab)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_NAME, "provium-labd");
		if (pv_lab_lock(root, lab, NULL) < 0)
			_exit(1);
		close(fds[0]);
		(void)!write(fds[1], "x", 1);
		pause();
		_exit(0);
	}
	char c;
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	return pid;
}

static void test_gc_live_daemon(void **state)
{
	struct fixture *f = *state;
	struct pv_err err;
	pv_err_clear(&err);
	f->fake = fake_daemon(f->root, f->lab);
	leftovers(f, f->lab, (int)f->fake);
	leftovers(f, f->other, 0x7fffffff);
	assert_int_equal(pv_gc(f->root, f->lab, &err), -EBUSY);
	assert_int_equal(err.code, EBUSY);
	assert_non_null(strstr(err.msg, f->lab));
	assert_null(strchr(err.msg, '\n'));
	assert_true(left(f, f->lab));
	/* every lab: the running one is skipped without an error */
	pv_err_clear(&err);
	assert_int_equal(pv_gc(f->root, NULL, &err), 0);
	assert_true(left(f, f->lab));
	assert_false(left(f, f->other));
	/* once it is dead its lab goes */
	kill(f->fake, SIGKILL);
	waitpid(f->fake, NULL, 0);
	f->fake = 0;
	assert_int_equal(pv_gc(f->root, NULL, &err), 0);
	assert_false(left(f, f->lab));
}

static void test_gc_namespaces(void **state)
{
	struct fixture *f = *state;
	if (geteuid() != 0)
		skip();
	struct pv_err err;
	pv_err_clear(&err);
	char lab_ns[64], node_ns[64], other_ns[64];
	pv_lab_netns_name(f->lab, lab_ns, sizeof(lab_ns));
	pv_node_netns_name(f->lab, "a", node_ns, sizeof(node_ns));
	/* lab "<lab>x" shares the prefix "pv-<lab>" but not "pv-<lab>." */
	pv_node_netns_name(f->other, "a", other_ns, sizeof(other_ns));
	int rc = pv_netns_create(lab_ns);
	if (rc == -EPERM)
		skip();
	assert_int_equal(rc, 0);
	assert_int_equal(pv_netns_create(node_ns), 0);
	assert_int_equal(pv_netns_create(other_ns), 0);
	leftovers(f, f->lab, 0x7fffffff);
	assert_int_equal(pv_gc(f->root, f->lab, &err), 0);
	assert_false(pv_netns_exists(lab_ns));
	assert_false(pv_netns_exists(node_ns));
	assert_true(pv_netns_exists(other_ns));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gc_dead_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_no_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_bad_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_live_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_namespaces, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
