/* QEMU processes: spawn, watch, stop, and NIC hot-plug over QMP. */
#include "qmp/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define QMP_CMD_MS 3000

struct pv_qemu {
	char *name;
	char *qmp_path, *agent_path, *log_path;
	pid_t pid;
	int pidfd;
	struct pv_qmp *qmp;
	int unplug_ms;
	pthread_mutex_t qmp_lock;  /* serializes QMP */
	pthread_mutex_t wait_lock; /* serializes waitpid and the status */
	bool exited;
	int status;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- process state ---- */

pid_t pv_qemu_pid(const struct pv_qemu *vm)
{
	return vm->pid;
}

int pv_qemu_exit_fd(const struct pv_qemu *vm)
{
	return vm->pidfd;
}

static void reap_locked(struct pv_qemu *vm, int flags)
{
	if (vm->exited)
		return;
	int st;
	pid_t r;
	do
		r = waitpid(vm->pid, &st, flags);
	while (r < 0 && errno == EINTR);
	if (r == vm->pid) {
		vm->exited = true;
		vm->status = st;
	} else if (r < 0) { /* someone else reaped it (waitpid(-1)) */
		vm->exited = true;
		vm->status = -1;
	}
}

bool pv_qemu_alive(struct pv_qemu *vm)
{
	pthread_mutex_lock(&vm->wait_lock);
	reap_locked(vm, WNOHANG);
	bool alive = !vm->exited;
	pthread_mutex_unlock(&vm->wait_lock);
	return alive;
}

bool pv_qemu_exit_status(struct pv_qemu *vm, int *status)
{
	pthread_mutex_lock(&vm->wait_lock);
	reap_locked(vm, WNOHANG);
	bool done = vm->exited;
	if (done && status)
		*status = vm->status;
	pthread_mutex_unlock(&vm->wait_lock);
	return done;
}

int pv_qemu_wait_exit(struct pv_qemu *vm, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		if (!pv_qemu_alive(vm))
			return 0;
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (vm->pidfd >= 0) {
			struct pollfd p = {.fd = vm->pidfd, .events = POLLIN};
			poll(&p, 1, (int)left);
		} else {
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

void pv_qemu_kill(struct pv_qemu *vm)
{
	pthread_mutex_lock(&vm->wait_lock);
	if (!vm->exited) {
		kill(vm->pid, SIGKILL);
		reap_locked(vm, 0);
	}
	pthread_mutex_unlock(&vm->wait_lock);
}

/* ---- QMP under the lock ---- */

int pv_qemu_command(struct pv_qemu *vm, const char *name, json_object *args,
		    int timeout_ms, json_object **ret, struct pv_err *err)
{
	pthread_mutex_lock(&vm->qmp_lock);
	int rc = pv_qmp_command(vm->qmp, name, args, timeout_ms, ret, err);
	pthread_mutex_unlock(&vm->qmp_lock);
	return rc;
}

int pv_qemu_poll_events(struct pv_qemu *vm, pv_qmp_event_cb cb, void *arg)
{
	pthread_mutex_lock(&vm->qmp_lock);
	int rc = pv_qmp_poll_events(vm->qmp, cb, arg);
	pthread_mutex_unlock(&vm->qmp_lock);
	return rc;
}

int pv_qemu_qmp_fd(const struct pv_qemu *vm)
{
	return pv_qmp_fd(vm->qmp);
}

int pv_qemu_stop(struct pv_qemu *vm, int grace_ms)
{
	if (!pv_qemu_alive(vm))
		return 0;
	/* the guest's ACPI power button: a guest with an OS shuts down cleanly */
	pv_qemu_command(vm, "system_powerdown", NULL, QMP_CMD_MS, NULL, NULL);
	if (pv_qemu_wait_exit(vm, grace_ms) == 0)
		return 0;
	pv_qemu_command(vm, "quit", NULL, QMP_CMD_MS, NULL, NULL);
	if (pv_qemu_wait_exit(vm, 2000) == 0)
		return 0;
	pv_qemu_kill(vm);
	return 1;
}

void pv_qemu_free(struct pv_qemu *vm)
{
	if (!vm)
		return;
	pv_qemu_kill(vm);
	pv_qmp_close(vm->qmp);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	/* QEMU removes its sockets on a clean exit, not when killed */
	unlink(vm->qmp_path);
	unlink(vm->agent_path);
	pthread_mutex_destroy(&vm->qmp_lock);
	pthread_mutex_destroy(&vm->wait_lock);
	free(vm->name);
	free(vm->qmp_path);
	free(vm->agent_path);
	free(vm->log_path);
	free(vm);
}

/* ---- start ---- */

static struct pv_qemu *vm_new(const struct pv_qemu_spec *s)
{
	struct pv_qemu *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	vm->pid = -1;
	vm->pidfd = -1;
	vm->exited = true; /* until spawned */
	vm->unplug_ms = s->unplug_timeout_ms ? s->unplug_timeout_ms : 5000;
	pthread_mutex_init(&vm->qmp_lock, NULL);
	pthread_mutex_init(&vm->wait_lock, NULL);
	vm->name = strdup(s->name);
	if (asprintf(&vm->qmp_path, "%s/qmp.sock", s->run_dir) < 0)
		vm->qmp_path = NULL;
	if (asprintf(&vm->agent_path, "%s/agent.sock", s->run_dir) < 0)
		vm->agent_path = NULL;
	if (asprintf(&vm->log_path, "%s/qemu.log", s->run_dir) < 0)
		vm->log_path = NULL;
	if (!vm->name || !vm->qmp_path || !vm->agent_path || !vm->log_path) {
		vm->exited = true;
		pv_qemu_free(vm);
		return NULL;
	}
	return vm;
}

/* A line in qemu.log before each start, so the log says what was run. */
static void log_argv(const char *log_path, char **argv)
{
	FILE *f = fopen(log_path, "ae");
	if (!f)
		return;
	fputs("# provium: starting", f);
	for (char **p = argv; *p; p++)
		fprintf(f, " %s", *p);
	fputc('\n', f);
	fclose(f);
}

/* The last non-empty line of qemu.log (QEMU's own error), into buf. */
static void log_tail(const char *log_path, char *buf, size_t len)
{
	snprintf(buf, len, "no message");
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char tail[1024];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0;
	ssize_t n = pread(fd, tail, sizeof(tail) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	char *line = strrchr(tail, '\n');
	const char *l = line ? line + 1 : tail;
	size_t n2 = strlen(l) < len - 1 ? strlen(l) : len - 1;
	memcpy(buf, l, n2);
	buf[n2] = '\0';
}

static int spawn(struct pv_qemu *vm, char **argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, vm->log_path,
					 O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* the daemon's FUSE channel, netlink sockets, other VMs' fds stay out */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	/* own session: a Ctrl-C on the daemon's terminal does not reach QEMU */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setsigmask(&at, &none);
	int rc = posix_spawnp(&vm->pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -rc;
	vm->exited = false;
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);
	return 0;
}

static int start_failed(struct pv_qemu *vm, int code, const char *what,
			struct pv_err *err)
{
	char tail[400];
	/* QEMU closes its sockets a moment before it becomes reapable */
	bool exited_itself = pv_qemu_wait_exit(vm, code == ETIMEDOUT ? 0 : 1000) == 0;
	pv_qemu_kill(vm);
	int st = vm->status;
	log_tail(vm->log_path, tail, sizeof(tail));
	if (exited_itself) {
		code = ECHILD;
		pv_err_set(err, code,
			   "QEMU for %s exited during start (status %d): %s (full log: %s)",
			   vm->name, st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, tail,
			   vm->log_path);
	} else {
		pv_err_set(err, code, "QEMU for %s: %s; last log line: %s (full log: %s)",
			   vm->name, what, tail, vm->log_path);
	}
	pv_qemu_free(vm);
	return -code;
}

static int ensure_dir(const char *dir, struct pv_err *err)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return pv_err_set(err, errno, "cannot create run directory %s: %s", dir,
				  strerror(errno));
	return 0;
}

int pv_qemu_start(const struct pv_qemu_spec *spec, struct pv_qemu **out,
		  struct pv_err *err)
{
	char **argv;
	int rc = pv_qemu_argv(spec, &argv, err);
	if (rc < 0)
		return rc;
	rc = ensure_dir(spec->run_dir, err);
	struct pv_qemu *vm = rc < 0 ? NULL : vm_new(spec);
	if (!vm) {
		pv_qemu_argv_free(argv);
		return rc < 0 ? rc : pv_err_set(err, ENOMEM, "out of memory");
	}
	/* a stale socket from a killed run would accept nothing */
	unlink(vm->qmp_path);
	unlink(vm->agent_path);
	log_argv(vm->log_path, argv);
	rc = spawn(vm, argv);
	if (rc < 0) {
		pv_err_set(err, -rc, "cannot run %s for %s: %s (is QEMU installed?)",
			   argv[0], spec->name, strerror(-rc));
		pv_qemu_argv_free(argv);
		pv_qemu_free(vm);
		return rc;
	}
	pv_qemu_argv_free(argv);
	struct pv_err qerr = {0};
	int ms = spec->start_timeout_ms ? spec->start_timeout_ms : 10000;
	rc = pv_qmp_connect_until(vm->qmp_path, ms, vm->pidfd, &vm->qmp, &qerr);
	if (rc < 0)
		return start_failed(vm, -rc, qerr.msg, err);
	*out = vm;
	return 0;
}

/* ---- NICs ---- */

static json_object *obj_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
	return o;
}

static int netdev_del(struct pv_qemu *vm, const char *netdev, struct pv_err *err)
{
	json_object *a = obj_str(json_object_new_object(), "id", netdev);
	int rc = pv_qmp_command(vm->qmp, "netdev_del", a, QMP_CMD_MS, NULL, err);
	json_object_put(a);
	return rc;
}

static int nic_add_locked(struct pv_qemu *vm, const struct pv_qemu_nic *n,
			  const char *netdev, struct pv_err *err)
{
	json_object *a = json_object_new_object();
	obj_str(a, "type", "tap");
	obj_str(a, "id", netdev);
	obj_str(a, "ifname", n->ifname);
	obj_str(a, "script", "no");
	obj_str(a, "downscript", "no");
	int rc = pv_qmp_command(vm->qmp, "netdev_add", a, QMP_CMD_MS, NULL, err);
	json_object_put(a);
	if (rc < 0)
		return rc;
	a = json_object_new_object();
	obj_str(a, "driver", "virtio-net-pci");
	obj_str(a, "netdev", netdev);
	obj_str(a, "id", n->id);
	obj_str(a, "mac", n->mac);
	rc = pv_qmp_command(vm->qmp, "device_add", a, QMP_CMD_MS, NULL, err);
	json_object_put(a);
	if (rc < 0)
		netdev_del(vm, netdev, NULL); /* no TAP without its NIC */
	return rc;
}

int pv_qemu_nic_add(struct pv_qemu *vm, const char *id, const char *ifname,
		    const char *mac, struct pv_err *err)
{
	struct pv_qemu_nic n = {.id = id, .ifname = ifname, .mac = mac};
	int rc = pv_qemu_nic_check(&n, err);
	if (rc < 0)
		return rc;
	char netdev[40];
	snprintf(netdev, sizeof(netdev), "%s-net", id);
	pthread_mutex_lock(&vm->qmp_lock);
	rc = nic_add_locked(vm, &n, netdev, err);
	pthread_mutex_unlock(&vm->qmp_lock);
	return rc;
}

static int nic_del_locked(struct pv_qemu *vm, const char *id, const char *netdev,
			  struct pv_err *err)
{
	json_object *a = obj_str(json_object_new_object(), "id", id);
	int rc = pv_qmp_command(vm->qmp, "device_del", a, QMP_CMD_MS, NULL, err);
	json_object_put(a);
	if (rc < 0)
		return rc;
	struct pv_err werr = {0};
	int wrc = pv_qmp_wait_event(vm->qmp, "DEVICE_DELETED", id, vm->unplug_ms, NULL,
				    &werr);
	if (wrc == -ECONNRESET)
		return pv_err_set(err, ECONNRESET, "%s", werr.msg);
	rc = netdev_del(vm, netdev, err);
	if (wrc == -ETIMEDOUT)
		return pv_err_set(err, ETIMEDOUT,
				  "VM %s did not release NIC %s within %d ms (no OS, "
				  "paused, or no ACPI hot-plug in the guest); its TAP was "
				  "removed, the guest keeps the device until it ejects it",
				  vm->name, id, vm->unplug_ms);
	return rc;
}

int pv_qemu_nic_del(struct pv_qemu *vm, const char *id, struct pv_err *err)
{
	struct pv_qemu_nic n = {.id = id, .ifname = "x", .mac = "52:54:00:00:00:00"};
	int rc = pv_qemu_nic_check(&n, err);
	if (rc < 0)
		return rc;
	char netdev[40];
	snprintf(netdev, sizeof(netdev), "%s-net", id);
	pthread_mutex_lock(&vm->qmp_lock);
	rc = nic_del_locked(vm, id, netdev, err);
	pthread_mutex_unlock(&vm->qmp_lock);
	return rc;
}

int pv_qemu_set_link(struct pv_qemu *vm, const char *id, bool up, struct pv_err *err)
{
	json_object *a = obj_str(json_object_new_object(), "name", id);
	json_object_object_add(a, "up", json_object_new_boolean(up));
	int rc = pv_qemu_command(vm, "set_link", a, QMP_CMD_MS, NULL, err);
	json_object_put(a);
	return rc;
}
