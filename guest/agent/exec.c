/* exec: one forked child per request, its pipes multiplexed by the main
 * loop, so several commands run at once and replies leave in any order. */
#include "guest/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Background children (`sleep 100 &`) keep the pipes open; once the main
 * process is gone we wait this long for the last bytes, then answer. */
#define DRAIN_GRACE 0.05
#define READ_BUDGET (1u << 20) /* bytes per stream per loop turn: no starving */

static const char *const default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=dumb",
};

struct spec {
	char *cmd;
	char **argv;
	char **env;
	char *cwd;
	char *in;
	size_t in_len;
	double timeout;
};

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static void spec_free(struct spec *s)
{
	free(s->cmd);
	strv_free(s->argv);
	strv_free(s->env);
	free(s->cwd);
	free(s->in);
}

/* A copy of a JSON string with no NUL inside (argv, env and paths cannot hold one). */
static int get_cstr(struct json_object *v, char **out)
{
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return -EINVAL;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int parse_argv(struct json_object *v, struct spec *s)
{
	size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
	if (!n)
		return -EINVAL;
	s->argv = calloc(n + 1, sizeof(char *));
	if (!s->argv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = get_cstr(json_object_array_get_idx(v, i), &s->argv[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Defaults first, each replaced by a request variable of the same name. */
static int build_env(struct json_object *v, struct spec *s)
{
	size_t nd = sizeof(default_env) / sizeof(default_env[0]);
	size_t ne = v ? (size_t)json_object_object_length(v) : 0;
	s->env = calloc(nd + ne + 1, sizeof(char *));
	if (!s->env)
		return -ENOMEM;
	size_t n = 0;
	if (v) {
		json_object_object_foreach(v, key, val) {
			char *value;
			if (!*key || strchr(key, '=') || get_cstr(val, &value))
				return -EINVAL;
			s->env[n] = malloc(strlen(key) + strlen(value) + 2);
			if (!s->env[n]) {
				free(value);
				return -ENOMEM;
			}
			strcpy(stpcpy(stpcpy(s->env[n], key), "="), value);
			free(value);
			n++;
		}
	}
	for (size_t d = 0; d < nd; d++) {
		size_t kl = strchr(default_env[d], '=') - default_env[d] + 1;
		int have = 0;
		for (size_t i = 0; i < n && !have; i++)
			have = !strncmp(s->env[i], default_env[d], kl);
		if (!have && !(s->env[n++] = strdup(default_env[d])))
			return -ENOMEM;
	}
	return 0;
}

static int parse_spec(struct json_object *req, struct spec *s, const char **bad)
{
	struct json_object *v;
	int rc = 0;
	s->timeout = PV_AGENT_DEFAULT_TIMEOUT;
	int has_cmd = json_object_object_get_ex(req, "cmd", &v) && v;
	if (has_cmd && (rc = get_cstr(v, &s->cmd)))
		return *bad = "\"cmd\" must be a string", rc;
	int has_argv = json_object_object_get_ex(req, "argv", &v) && v;
	if (has_argv && (rc = parse_argv(v, s)))
		return *bad = "\"argv\" must be a non-empty array of strings", rc;
	if (has_cmd == has_argv)
		return *bad = "give exactly one of \"cmd\" (a shell line) or \"argv\" (an array)", -EINVAL;
	if (json_object_object_get_ex(req, "env", &v) && v && !json_object_is_type(v, json_type_object))
		return *bad = "\"env\" must be an object of strings", -EINVAL;
	if ((rc = build_env(v, s)))
		return *bad = "\"env\" must map names without '=' to strings", rc;
	if (json_object_object_get_ex(req, "cwd", &v) && v && (rc = get_cstr(v, &s->cwd)))
		return *bad = "\"cwd\" must be a string", rc;
	if (json_object_object_get_ex(req, "stdin", &v) && v) {
		if (!json_object_is_type(v, json_type_string))
			return *bad = "\"stdin\" must be a string", -EINVAL;
		s->in_len = (size_t)json_object_get_string_len(v);
		s->in = malloc(s->in_len + 1);
		if (!s->in)
			return *bad = "out of memory", -ENOMEM;
		memcpy(s->in, json_object_get_string(v), s->in_len);
	}
	if (json_object_object_get_ex(req, "timeout", &v) && v) {
		if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
			return *bad = "\"timeout\" must be a number of seconds", -EINVAL;
		s->timeout = json_object_get_double(v);
		if (!(s->timeout > 0))
			return *bad = "\"timeout\" must be more than 0 seconds", -EINVAL;
	}
	return 0;
}

/* What the child reports through the status pipe when it cannot exec. */
struct start_fail {
	int step; /* 0 = chdir, 1 = exec */
	int err;
};

static void __attribute__((noreturn)) child(const struct spec *s, int in, int out, int err, int st)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid(); /* its own process group: a timeout kills the whole tree */
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	struct start_fail f = {0, 0};
	if (chdir(s->cwd ? s->cwd : "/") < 0) {
		f.err = errno;
	} else {
		f.step = 1;
		environ = s->env; /* execvp searches the PATH of the command's env */
		if (s->cmd) {
			char *sh[] = {"sh", "-c", s->cmd, NULL};
			execve("/bin/sh", sh, s->env);
		} else {
			execvp(s->argv[0], s->argv);
		}
		f.err = errno;
	}
	ssize_t w = write(st, &f, sizeof(f));
	(void)w;
	_exit(127);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void job_free(struct job *j)
{
	close_fd(&j->fd_in);
	close_fd(&j->fd_status);
	close_fd(&j->out.fd);
	close_fd(&j->err.fd);
	pv_buf_free(&j->out.buf);
	pv_buf_free(&j->err.buf);
	free(j->in_data);
	json_object_put(j->id);
	free(j);
}

static int make_pipes(int p[4][2])
{
	for (int i = 0; i < 4; i++)
		p[i][0] = p[i][1] = -1;
	for (int i = 0; i < 4; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0)
			return -errno;
	return 0;
}

static void close_pipes(int p[4][2])
{
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 2; k++)
			close_fd(&p[i][k]);
}

/* Fork the command; pipes are 0 stdin, 1 stdout, 2 stderr, 3 status. */
static int spawn(struct job *j, struct spec *s)
{
	int p[4][2];
	int rc = make_pipes(p);
	pid_t pid = rc ? -1 : fork();
	if (!rc && pid < 0)
		rc = -errno;
	if (rc) {
		close_pipes(p);
		return rc;
	}
	if (pid == 0)
		child(s, p[0][0], p[1][1], p[2][1], p[3][1]);
	j->pid = pid;
	j->fd_in = p[0][1];
	j->out.fd = p[1][0];
	j->err.fd = p[2][0];
	j->fd_status = p[3][0];
	p[0][1] = p[1][0] = p[2][0] = p[3][0] = -1;
	close_pipes(p);
	pv_set_nonblock(j->fd_in);
	pv_set_nonblock(j->out.fd);
	pv_set_nonblock(j->err.fd);
	pv_set_nonblock(j->fd_status);
	if (!s->in_len)
		close_fd(&j->fd_in);
	j->in_data = s->in;
	j->in_len = s->in_len;
	s->in = NULL;
	return 0;
}

void exec_start(struct agent *ag, struct json_object *id, struct json_object *req)
{
	struct spec s = {0};
	const char *bad = NULL;
	int rc = parse_spec(req, &s, &bad);
	if (rc) {
		agent_reply_err(ag, id, -rc, "exec: %s", bad);
		spec_free(&s);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		agent_reply_err(ag, id, ENOMEM, "exec: out of memory");
		spec_free(&s);
		return;
	}
	j->fd_in = j->fd_status = j->out.fd = j->err.fd = -1;
	j->id = json_object_get(id);
	rc = spawn(j, &s);
	if (rc) {
		agent_reply_err(ag, id, -rc, "exec: cannot start: %s", strerror(-rc));
		job_free(j);
	} else {
		j->deadline = pv_now() + s.timeout;
		j->next = ag->jobs;
		ag->jobs = j;
	}
	spec_free(&s);
}

void exec_child_exited(struct agent *ag, pid_t pid, int wstatus)
{
	for (struct job *j = ag->jobs; j; j = j->next) {
		if (j->pid == pid && !j->exited) {
			j->exited = 1;
			j->wstatus = wstatus;
			j->drain_until = pv_now() + DRAIN_GRACE;
			return;
		}
	}
}

double exec_next_deadline(struct agent *ag)
{
	double next = -1;
	for (struct job *j = ag->jobs; j; j = j->next) {
		double t = j->exited ? j->drain_until : j->timed_out ? -1 : j->deadline;
		if (t >= 0 && (next < 0 || t < next))
			next = t;
	}
	return next;
}

size_t exec_count_fds(struct agent *ag)
{
	size_t n = 0;
	for (struct job *j = ag->jobs; j; j = j->next)
		n += 4;
	return n;
}

size_t exec_fill(struct agent *ag, struct pollfd *p)
{
	size_t n = 0;
	for (struct job *j = ag->jobs; j; j = j->next) {
		if (j->fd_in >= 0)
			p[n++] = (struct pollfd){.fd = j->fd_in, .events = POLLOUT};
		if (j->out.fd >= 0)
			p[n++] = (struct pollfd){.fd = j->out.fd, .events = POLLIN};
		if (j->err.fd >= 0)
			p[n++] = (struct pollfd){.fd = j->err.fd, .events = POLLIN};
		if (j->fd_status >= 0)
			p[n++] = (struct pollfd){.fd = j->fd_status, .events = POLLIN};
	}
	return n;
}

static void stream_read(struct job_stream *s)
{
	char chunk[65536];
	size_t budget = READ_BUDGET;
	while (s->fd >= 0 && budget) {
		ssize_t n = read(s->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(&s->fd);
			return;
		}
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		size_t keep = s->buf.len >= PV_AGENT_MAX_OUTPUT ? 0 : PV_AGENT_MAX_OUTPUT - s->buf.len;
		if ((size_t)n > keep)
			s->cut = 1;
		/* past the cap, keep reading so the command does not block on a full pipe */
		if (keep && pv_buf_add(&s->buf, chunk, (size_t)n < keep ? (size_t)n : keep))
			s->cut = 1;
	}
}

static void stdin_write(struct job *j)
{
	while (j->fd_in >= 0 && j->in_off < j->in_len) {
		ssize_t w = write(j->fd_in, j->in_data + j->in_off, j->in_len - j->in_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) { /* EPIPE: the command stopped reading; fine */
			close_fd(&j->fd_in);
			return;
		}
		j->in_off += (size_t)w;
	}
	close_fd(&j->fd_in);
}

static void status_read(struct job *j)
{
	struct start_fail f;
	ssize_t n = read(j->fd_status, &f, sizeof(f));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == (ssize_t)sizeof(f)) {
		j->start_errno = f.err ? f.err : EIO;
		j->start_step = f.step;
	}
	/* EOF without a report: exec succeeded (the pipe is close-on-exec) */
	close_fd(&j->fd_status);
}

void exec_events(struct agent *ag, struct pollfd *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		for (struct job *j = ag->jobs; j; j = j->next) {
			if (p[i].fd == j->fd_in)
				stdin_write(j);
			else if (p[i].fd == j->out.fd)
				stream_read(&j->out);
			else if (p[i].fd == j->err.fd)
				stream_read(&j->err);
			else if (p[i].fd == j->fd_status)
				status_read(j);
			else
				continue;
			break;
		}
	}
}

static struct json_object *stream_json(struct job_stream *s)
{
	return pv_json_string_utf8(s->buf.data ? s->buf.data : "", s->buf.len);
}

static struct json_object *job_result(struct job *j)
{
	struct json_object *r = json_object_new_object();
	int st = j->wstatus, code, sig = 0;
	const char *status;
	if (j->timed_out) {
		status = "timed_out", sig = SIGKILL, code = 128 + SIGKILL;
	} else if (WIFSIGNALED(st)) {
		status = "signalled", sig = WTERMSIG(st), code = 128 + sig;
	} else {
		status = "exited", code = WEXITSTATUS(st);
	}
	json_object_object_add(r, "exit_code", json_object_new_int(code));
	json_object_object_add(r, "status", json_object_new_string(status));
	json_object_object_add(r, "signal", sig ? json_object_new_int(sig) : NULL);
	json_object_object_add(r, "stdout", stream_json(&j->out));
	json_object_object_add(r, "stderr", stream_json(&j->err));
	if (j->out.cut)
		json_object_object_add(r, "stdout_truncated", json_object_new_boolean(1));
	if (j->err.cut)
		json_object_object_add(r, "stderr_truncated", json_object_new_boolean(1));
	return r;
}

static void job_finish(struct agent *ag, struct job *j)
{
	/* what is already in the pipes belongs to the answer */
	stream_read(&j->out);
	stream_read(&j->err);
	if (j->start_errno)
		agent_reply_err(ag, j->id, j->start_errno, "exec: %s: %s",
				j->start_step ? "cannot run the command" : "cannot enter cwd",
				strerror(j->start_errno));
	else
		agent_reply_ok(ag, j->id, job_result(j));
	job_free(j);
}

static int job_done(const struct job *j, double now)
{
	if (!j->exited || j->fd_status >= 0)
		return 0;
	return (j->out.fd < 0 && j->err.fd < 0) || now >= j->drain_until;
}

void exec_tick(struct agent *ag)
{
	double now = pv_now();
	struct job **pp = &ag->jobs;
	while (*pp) {
		struct job *j = *pp;
		if (!j->exited && !j->timed_out && now >= j->deadline) {
			kill(-j->pid, SIGKILL);
			kill(j->pid, SIGKILL);
			j->timed_out = 1;
		}
		if (job_done(j, now)) {
			if (j->timed_out) /* anything the group started dies with it */
				kill(-j->pid, SIGKILL);
			*pp = j->next;
			job_finish(ag, j);
		} else {
			pp = &j->next;
		}
	}
}
