#include "netcore/nsexec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long to keep reading after the main process has exited: enough for the
 * last bytes of its own output, short enough that a background child that
 * holds the pipes (`sleep 100 &`) does not hold the result back. */
#define DRAIN_MS 50
#define READ_CHUNK 65536

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "TERM=dumb",
};
#define N_DEFAULT_ENV (sizeof(default_env) / sizeof(default_env[0]))

/* What failed in the child before execve, reported over the status pipe. */
enum stage { ST_SETNS = 1, ST_UNSHARE, ST_PRIVATE, ST_HOSTS, ST_HOSTNAME, ST_CWD, ST_STDIO };

struct child_report {
	int stage;
	int err;
};

/* Everything the child needs, built before fork: after fork in a
 * multithreaded process the child may only make async-signal-safe calls, so
 * no malloc, no stdio, no strerror there. */
struct spawn {
	int nsfd;
	int in[2], out[2], errp[2], status[2];
	const char *hosts_path;
	const char *hostname;
	size_t hostname_len;
	const char *cwd;
	char **argv;  /* what execve gets */
	char **paths; /* candidate files for argv[0], NULL-terminated */
	char **envp;
	char *fail_prefix; /* "provium run: NAME: " for exec failures */
	size_t fail_prefix_len;
};

/* ---- preparation (parent, before fork) ---- */

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static bool same_key(const char *a, const char *b)
{
	size_t ka = strcspn(a, "="), kb = strcspn(b, "=");
	return ka == kb && !memcmp(a, b, ka);
}

/* Minimal environment plus the request's; a request entry replaces a default
 * of the same name. Entries are shared with the request, only the array is
 * ours. */
static char **build_env(char *const *req_env)
{
	size_t n = strv_len(req_env), k = 0;
	char **env = calloc(N_DEFAULT_ENV + n + 1, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < N_DEFAULT_ENV; i++) {
		bool overridden = false;
		for (size_t j = 0; j < n; j++)
			overridden |= same_key(default_env[i], req_env[j]);
		if (!overridden)
			env[k++] = (char *)default_env[i];
	}
	for (size_t j = 0; j < n; j++)
		env[k++] = req_env[j];
	return env;
}

static const char *env_get(char *const *env, const char *key)
{
	size_t kl = strlen(key);
	for (; *env; env++)
		if (!strncmp(*env, key, kl) && (*env)[kl] == '=')
			return *env + kl + 1;
	return NULL;
}

static char *join_path(const char *dir, size_t dlen, const char *file)
{
	size_t fl = strlen(file);
	char *p = malloc(dlen + fl + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, dlen);
	p[dlen] = '/';
	memcpy(p + dlen + 1, file, fl + 1);
	return p;
}

/* execvp's PATH search done ahead of time: execvp itself is not on the
 * async-signal-safe list, so the child only walks this list with execve. */
static char **build_paths(const char *file, const char *path)
{
	size_t n = 1;
	for (const char *p = path; p && *p; p++)
		n += *p == ':';
	char **v = calloc(n + 1, sizeof(char *));
	if (!v)
		return NULL;
	if (strchr(file, '/') || !path) {
		v[0] = strdup(file);
		if (!v[0])
			goto fail;
		return v;
	}
	size_t k = 0;
	for (const char *p = path;; p++) {
		size_t len = strcspn(p, ":");
		/* an empty PATH element means the current directory */
		v[k] = len ? join_path(p, len, file) : join_path(".", 1, file);
		if (!v[k++])
			goto fail;
		p += len;
		if (!*p)
			break;
	}
	return v;
fail:
	pv_strv_free(v);
	return NULL;
}

static int build_cmd(struct spawn *s, const struct pv_run_req *req)
{
	const char *name = req->argv ? req->argv[0] : "sh";
	if (req->argv) {
		s->argv = req->argv;
		s->paths = build_paths(name, env_get(s->envp, "PATH"));
	} else {
		s->argv = calloc(4, sizeof(char *));
		if (s->argv) {
			s->argv[0] = "/bin/sh";
			s->argv[1] = "-c";
			s->argv[2] = req->cmd;
		}
		s->paths = build_paths("/bin/sh", NULL);
	}
	size_t nl = strlen(name);
	s->fail_prefix = malloc(nl + 16);
	if (s->fail_prefix) {
		memcpy(s->fail_prefix, "provium run: ", 13);
		memcpy(s->fail_prefix + 13, name, nl);
		memcpy(s->fail_prefix + 13 + nl, ": ", 3);
		s->fail_prefix_len = nl + 15;
	}
	return s->argv && s->paths && s->fail_prefix ? 0 : -ENOMEM;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* The child dup2()s its ends onto 0, 1 and 2; an end already sitting on one
 * of those (a daemon with closed stdio) would be clobbered by the others. */
static int lift_fd(int *fd)
{
	if (*fd > 2)
		return 0;
	int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -errno;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	int rc = lift_fd(&p[0]);
	return rc ? rc : lift_fd(&p[1]);
}

static void spawn_free(struct spawn *s, const struct pv_run_req *req)
{
	int *fds[] = {&s->nsfd,	   &s->in[0],	&s->in[1],     &s->out[0],   &s->out[1],
		      &s->errp[0], &s->errp[1], &s->status[0], &s->status[1]};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close_fd(fds[i]);
	if (s->argv != req->argv)
		free(s->argv);
	pv_strv_free(s->paths);
	free(s->envp);
	free(s->fail_prefix);
}

static int open_netns(struct spawn *s, const char *path, struct pv_err *err)
{
	s->nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->nsfd < 0) {
		int e = errno;
		return pv_err_set(err, e, "run: cannot open netns %s: %s: is the node created?",
				  path, strerror(e));
	}
	struct statfs st;
	if (fstatfs(s->nsfd, &st) < 0 || st.f_type != NSFS_MAGIC)
		return pv_err_set(
		    err, EINVAL, "run: %s is not a namespace file: give the node's /run/netns path",
		    path);
	return 0;
}

static int check_target(const struct pv_nsexec_target *t, struct pv_err *err)
{
	struct stat st;
	if (t->hosts_path && stat(t->hosts_path, &st) < 0) {
		int e = errno;
		return pv_err_set(
		    err, e, "run: hosts file %s for %s: %s: write the node's hosts file first",
		    t->hosts_path, t->netns_path, strerror(e));
	}
	if (t->hosts_path && !S_ISREG(st.st_mode))
		return pv_err_set(err, EINVAL,
				  "run: hosts file %s for %s is not a regular file: give a file",
				  t->hosts_path, t->netns_path);
	if (t->hostname && (!t->hostname[0] || strlen(t->hostname) > HOST_NAME_MAX))
		return pv_err_set(
		    err, EINVAL,
		    "run: host name \"%s\" of %s must be 1 to %d characters: rename the node",
		    t->hostname, t->netns_path, HOST_NAME_MAX);
	return 0;
}

static int spawn_prepare(struct spawn *s, const struct pv_nsexec_target *t,
			 const struct pv_run_req *req, struct pv_err *err)
{
	if (!req->cmd && !req->argv)
		return pv_err_set(err, EINVAL, "run: request has no command: give cmd or argv");
	int rc = check_target(t, err);
	if (!rc)
		rc = open_netns(s, t->netns_path, err);
	if (rc)
		return rc;
	s->hosts_path = t->hosts_path;
	s->hostname = t->hostname;
	s->hostname_len = t->hostname ? strlen(t->hostname) : 0;
	s->cwd = req->cwd ? req->cwd : "/";
	s->envp = build_env(req->env);
	if (!s->envp || build_cmd(s, req) < 0)
		return pv_err_set(err, ENOMEM, "run: out of memory");
	int *pipes[] = {s->in, s->out, s->errp, s->status};
	for (size_t i = 0; i < 4; i++) {
		rc = make_pipe(pipes[i]);
		if (rc)
			return pv_err_set(err, -rc,
					  "run: cannot create pipes: %s: close some files",
					  strerror(-rc));
	}
	return 0;
}

/* ---- the child (async-signal-safe only) ---- */

static void put(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w <= 0 && errno != EINTR)
			return;
		if (w > 0) {
			s += w;
			n -= (size_t)w;
		}
	}
}

static void puts_fd(int fd, const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	put(fd, s, n);
}

static __attribute__((noreturn)) void child_fail(const struct spawn *s, enum stage st)
{
	struct child_report r = {.stage = st, .err = errno};
	put(s->status[1], (const char *)&r, sizeof(r));
	_exit(127);
}

/* Signals the daemon ignores or blocks must not leak into the command
 * (SIG_IGN survives execve; a command with SIGPIPE ignored misbehaves). */
static void child_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* fails harmlessly for KILL, STOP, RT internals */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void child_ns(const struct spawn *s)
{
	if (setns(s->nsfd, CLONE_NEWNET) < 0)
		child_fail(s, ST_SETNS);
	if (unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0)
		child_fail(s, ST_UNSHARE);
	/* our bind mounts must not propagate back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		child_fail(s, ST_PRIVATE);
	/* /sys shows the netns of whoever mounted it: remount it so tools that
	 * read /sys/class/net see the node's links. Best effort: not every host
	 * lets us (a read-only or locked /sys), and netlink tools do not care. */
	if (umount2("/sys", MNT_DETACH) == 0)
		mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (s->hosts_path && mount(s->hosts_path, "/etc/hosts", NULL, MS_BIND, NULL) < 0)
		child_fail(s, ST_HOSTS);
	if (s->hostname && sethostname(s->hostname, s->hostname_len) < 0)
		child_fail(s, ST_HOSTNAME);
}

static void child_stdio(const struct spawn *s)
{
	if (dup2(s->in[0], 0) < 0 || dup2(s->out[1], 1) < 0 || dup2(s->errp[1], 2) < 0)
		child_fail(s, ST_STDIO);
	/* descriptors the daemon opened without O_CLOEXEC stay out of the command */
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
}

static const char *exec_reason(int e)
{
	switch (e) {
	case ENOENT:
		return "not found\n";
	case EACCES:
		return "permission denied\n";
	case ENOEXEC:
		return "exec format error\n";
	case ENOTDIR:
		return "not a directory\n";
	default:
		return "cannot execute\n";
	}
}

static __attribute__((noreturn)) void child_run(const struct spawn *s)
{
	child_signals();
	setsid(); /* own process group, so a timeout can kill all of it */
	child_ns(s);
	if (chdir(s->cwd) < 0)
		child_fail(s, ST_CWD);
	child_stdio(s);
	int e = ENOENT;
	for (char **p = s->paths; *p; p++) {
		execve(*p, s->argv, s->envp);
		/* like execvp: keep looking after ENOENT, remember anything worse */
		if (errno != ENOENT && errno != ENOTDIR)
			e = errno;
	}
	put(2, s->fail_prefix, s->fail_prefix_len);
	puts_fd(2, exec_reason(e));
	_exit(e == ENOENT ? 127 : 126);
}

/* ---- the parent: feed stdin, collect output, enforce the timeout ---- */

struct buf {
	char *p;
	size_t len, cap;
};

struct io {
	pid_t pid;
	int pidfd;	  /* -1: poll waitpid on a short tick instead */
	int in, out, err; /* parent ends, -1 when closed */
	const char *data;
	size_t data_len, data_off;
	bool epipe;
	struct buf obuf, ebuf;
	int wstatus;
	bool exited, timed_out;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Keeps at most PV_RUN_MAX_OUTPUT bytes; the rest is read and dropped so the
 * command never blocks on a full pipe. */
static int buf_add(struct buf *b, const char *d, size_t n)
{
	if (b->len + n > PV_RUN_MAX_OUTPUT)
		n = PV_RUN_MAX_OUTPUT - b->len;
	if (n == 0)
		return 0;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

/* Reads what is there now; closes *fd at EOF. */
static int read_some(int *fd, struct buf *b)
{
	char chunk[READ_CHUNK];
	for (int i = 0; i < 16 && *fd >= 0; i++) {
		ssize_t n = read(*fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			close_fd(fd);
			return 0;
		}
		if (buf_add(b, chunk, (size_t)n) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void write_some(struct io *io)
{
	while (io->in >= 0 && io->data_off < io->data_len) {
		ssize_t n = write(io->in, io->data + io->data_off, io->data_len - io->data_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* the command closed its stdin: like a shell pipe, not an error */
			io->epipe |= errno == EPIPE;
			close_fd(&io->in);
			return;
		}
		io->data_off += (size_t)n;
	}
	close_fd(&io->in); /* all written: the command sees EOF */
}

static void reap(struct io *io, int flags)
{
	int st;
	pid_t r;
	do
		r = waitpid(io->pid, &st, flags);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;
	/* r < 0 (ECHILD): someone else reaped it (SIGCHLD ignored); report exit 0
	 * rather than hang. */
	io->wstatus = r > 0 ? st : 0;
	io->exited = true;
	close_fd(&io->pidfd);
	close_fd(&io->in);
}

static void kill_group(struct io *io)
{
	/* the group id is the pid (setsid); the plain kill covers the instant
	 * before the child's setsid() */
	kill(-io->pid, SIGKILL);
	kill(io->pid, SIGKILL);
	io->timed_out = true;
	reap(io, 0);
}

static int poll_once(struct io *io, int timeout_ms)
{
	struct pollfd p[4];
	int n = 0, ii = -1, io_ = -1, ie = -1, ip = -1;
	if (io->in >= 0) {
		p[n] = (struct pollfd){.fd = io->in, .events = POLLOUT};
		ii = n++;
	}
	if (io->out >= 0) {
		p[n] = (struct pollfd){.fd = io->out, .events = POLLIN};
		io_ = n++;
	}
	if (io->err >= 0) {
		p[n] = (struct pollfd){.fd = io->err, .events = POLLIN};
		ie = n++;
	}
	if (io->pidfd >= 0) {
		p[n] = (struct pollfd){.fd = io->pidfd, .events = POLLIN};
		ip = n++;
	}
	if (poll(p, (nfds_t)n, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (ii >= 0 && p[ii].revents)
		write_some(io);
	int rc = 0;
	if (io_ >= 0 && p[io_].revents)
		rc = read_some(&io->out, &io->obuf);
	if (!rc && ie >= 0 && p[ie].revents)
		rc = read_some(&io->err, &io->ebuf);
	if (!io->exited && (ip < 0 || p[ip].revents))
		reap(io, WNOHANG);
	return rc;
}

static int io_loop(struct io *io, double timeout_s)
{
	int64_t deadline = now_ms() + (int64_t)(timeout_s * 1000.0 + 0.5);
	int64_t drain_end = 0;
	if (io->data_len == 0)
		close_fd(&io->in);
	for (;;) {
		int64_t now = now_ms();
		if (!io->exited && now >= deadline)
			kill_group(io);
		if (io->exited && !drain_end)
			drain_end = now + DRAIN_MS;
		if (io->exited && ((io->out < 0 && io->err < 0) || now >= drain_end))
			break;
		int64_t wait = io->exited ? drain_end - now : deadline - now;
		if (!io->exited && io->pidfd < 0 && wait > 10)
			wait = 10;
		int rc = poll_once(io, (int)(wait < 0 ? 0 : wait));
		if (rc)
			return rc;
	}
	/* whatever the command wrote before it exited is in the pipes now */
	int rc = io->out >= 0 ? read_some(&io->out, &io->obuf) : 0;
	return rc ? rc : (io->err >= 0 ? read_some(&io->err, &io->ebuf) : 0);
}

/* Writing to a pipe whose reader is gone raises SIGPIPE, which would kill the
 * daemon unless it ignores it; a library cannot rely on that, so the signal is
 * blocked in this thread and a pending one is swallowed. */
static int io_run(struct io *io, double timeout_s)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);

	int rc = io_loop(io, timeout_s);
	if (!io->exited) /* out of memory: do not leave the command behind */
		kill_group(io);

	if (io->epipe && !was_pending) {
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static char *take(struct buf *b, size_t *len)
{
	*len = b->len;
	if (!b->p)
		return calloc(1, 1);
	b->p[b->len] = '\0';
	return b->p;
}

static int fill_result(struct io *io, struct pv_run_result *res)
{
	memset(res, 0, sizeof(*res));
	if (io->timed_out) {
		res->status = PV_RUN_TIMED_OUT;
		res->signal = SIGKILL;
		res->exit_code = 128 + SIGKILL;
	} else if (WIFSIGNALED(io->wstatus)) {
		res->status = PV_RUN_SIGNALLED;
		res->signal = WTERMSIG(io->wstatus);
		res->exit_code = 128 + res->signal;
	} else {
		res->status = PV_RUN_EXITED;
		res->exit_code = WEXITSTATUS(io->wstatus);
	}
	res->out = take(&io->obuf, &res->out_len);
	res->err = take(&io->ebuf, &res->err_len);
	if (!res->out || !res->err) {
		pv_run_result_free(res);
		return -ENOMEM;
	}
	return 0;
}

/* ---- glue ---- */

static int setup_error(const struct child_report *r, const struct pv_nsexec_target *t,
		       const struct pv_run_req *req, struct pv_err *err)
{
	const char *why = strerror(r->err);
	const char *node = t->netns_path;
	switch (r->stage) {
	case ST_SETNS:
		return pv_err_set(err, r->err, "run: cannot enter netns %s: %s: is the node up?",
				  node, why);
	case ST_UNSHARE:
	case ST_PRIVATE:
		return pv_err_set(
		    err, r->err,
		    "run: cannot make private mounts for %s: %s: run the daemon as root", node,
		    why);
	case ST_HOSTS:
		return pv_err_set(
		    err, r->err,
		    "run: cannot bind %s on /etc/hosts in %s: %s: check that both files exist",
		    t->hosts_path, node, why);
	case ST_HOSTNAME:
		return pv_err_set(err, r->err,
				  "run: cannot set host name \"%s\" in %s: %s: rename the node",
				  t->hostname, node, why);
	case ST_CWD:
		return pv_err_set(err, r->err,
				  "run: cwd %s in %s: %s: give a directory that exists",
				  req->cwd ? req->cwd : "/", node, why);
	default:
		return pv_err_set(err, r->err, "run: cannot set up the command's stdio in %s: %s",
				  node, why);
	}
}

/* The child writes a report only when it fails before execve; a successful
 * execve closes the pipe (O_CLOEXEC) and the read sees EOF. */
static int wait_started(struct spawn *s, pid_t pid, const struct pv_nsexec_target *t,
			const struct pv_run_req *req, struct pv_err *err)
{
	struct child_report r;
	ssize_t n;
	do
		n = read(s->status[0], &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(r))
		return 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return setup_error(&r, t, req, err);
}

static void close_child_ends(struct spawn *s)
{
	close_fd(&s->nsfd);
	close_fd(&s->in[0]);
	close_fd(&s->out[1]);
	close_fd(&s->errp[1]);
	close_fd(&s->status[1]);
}

static int run_started(struct spawn *s, pid_t pid, const struct pv_run_req *req,
		       struct pv_run_result *res, struct pv_err *err)
{
	struct io io = {.pid = pid,
			.in = s->in[1],
			.out = s->out[0],
			.err = s->errp[0],
			.data = req->stdin_data,
			.data_len = req->stdin_data ? req->stdin_len : 0};
	s->in[1] = s->out[0] = s->errp[0] = -1; /* io owns them now */
	io.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	set_nonblock(io.in);
	set_nonblock(io.out);
	set_nonblock(io.err);

	/* a hand-built request may carry anything; parse caps at a day too */
	double timeout = req->timeout > 0 ? req->timeout : PV_RUN_DEFAULT_TIMEOUT;
	int rc = io_run(&io, timeout > 86400.0 ? 86400.0 : timeout);
	close_fd(&io.in);
	close_fd(&io.out);
	close_fd(&io.err);
	close_fd(&io.pidfd);
	if (!rc)
		rc = fill_result(&io, res);
	else {
		free(io.obuf.p);
		free(io.ebuf.p);
	}
	return rc ? pv_err_set(err, -rc, "run: collecting output failed: %s", strerror(-rc)) : 0;
}

int pv_nsexec_run(const struct pv_nsexec_target *t, const struct pv_run_req *req,
		  struct pv_run_result *res, struct pv_err *err)
{
	struct spawn s = {
	    .nsfd = -1, .in = {-1, -1}, .out = {-1, -1}, .errp = {-1, -1}, .status = {-1, -1}};
	memset(res, 0, sizeof(*res));
	int rc = spawn_prepare(&s, t, req, err);
	if (rc) {
		spawn_free(&s, req);
		return rc;
	}
	pid_t pid = fork();
	if (pid == 0)
		child_run(&s);
	if (pid < 0) {
		int e = errno;
		spawn_free(&s, req);
		return pv_err_set(err, e, "run: cannot fork for %s: %s", t->netns_path,
				  strerror(e));
	}
	close_child_ends(&s);
	rc = wait_started(&s, pid, t, req, err);
	if (!rc)
		rc = run_started(&s, pid, req, res, err);
	spawn_free(&s, req);
	return rc;
}
