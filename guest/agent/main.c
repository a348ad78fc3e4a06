/* provium-agent: PID 1 of a provium guest. Speaks newline-delimited JSON on
 * a virtio-serial port (or an inherited descriptor, for tests) and never
 * exits while it is PID 1: the kernel panics when init dies. */
#include "guest/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_PORT "/dev/virtio-ports/org.provium.agent"
#define PROBE_INTERVAL 0.2 /* s between looks at a port whose host is away */

static void usage(void)
{
	pv_log("usage: provium-agent [--port PATH | --fd N] [--etc DIR]");
}

/* ---- replies ---- */

static struct json_object *msg_base(struct json_object *id, int ok)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "id", json_object_get(id));
	json_object_object_add(m, "ok", json_object_new_boolean(ok));
	return m;
}

struct json_object *agent_msg_ok(struct json_object *id, struct json_object *result)
{
	struct json_object *m = msg_base(id, 1);
	if (result)
		json_object_object_add(m, "result", result);
	return m;
}

static struct json_object *msg_err_v(struct json_object *id, int errnum, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	struct json_object *m = msg_base(id, 0);
	json_object_object_add(m, "errno", json_object_new_int(errnum));
	json_object_object_add(m, "error", pv_json_string_utf8(line, strlen(line)));
	return m;
}

struct json_object *agent_msg_err(struct json_object *id, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct json_object *m = msg_err_v(id, errnum, fmt, ap);
	va_end(ap);
	return m;
}

void agent_send(struct agent *ag, struct json_object *msg)
{
	size_t len;
	const char *s = json_object_to_json_string_length(
		msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!s || pv_buf_add(&ag->out, s, len) || pv_buf_add(&ag->out, "\n", 1))
		pv_log("provium-agent: out of memory, a reply is lost");
	json_object_put(msg);
}

void agent_reply_ok(struct agent *ag, struct json_object *id, struct json_object *result)
{
	agent_send(ag, agent_msg_ok(id, result));
}

void agent_reply_err(struct agent *ag, struct json_object *id, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	agent_send(ag, msg_err_v(id, errnum, fmt, ap));
	va_end(ap);
}

static void send_ready(struct agent *ag)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "event", json_object_new_string("ready"));
	json_object_object_add(m, "version", json_object_new_int(PV_AGENT_VERSION));
	agent_send(ag, m);
}

/* ---- network changes: one forked helper at a time, in request order ---- */

static void net_worker_start(struct agent *ag, struct json_object *req)
{
	struct json_object *id = NULL;
	json_object_object_get_ex(req, "id", &id);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		agent_reply_err(ag, id, errno, "net: pipe: %s", strerror(errno));
		json_object_put(req);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		agent_reply_err(ag, id, errno, "net: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		json_object_put(req);
		return;
	}
	if (pid == 0) {
		/* hold no exec pipe nor the port open while waiting for a NIC:
		 * a command would never see EOF on its stdin */
		close_range(3, (unsigned)p[1] - 1, 0);
		close_range((unsigned)p[1] + 1, ~0u, 0);
		struct json_object *m = net_apply(id, req, ag->etc);
		const char *s = json_object_to_json_string_ext(
			m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		size_t len = strlen(s), off = 0;
		while (off < len) {
			ssize_t w = write(p[1], s + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		_exit(0);
	}
	close(p[1]);
	pv_set_nonblock(p[0]);
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		/* the helper still runs; its answer is lost, say so */
		close(p[0]);
		agent_reply_err(ag, id, ENOMEM, "net: out of memory");
		json_object_put(req);
		return;
	}
	w->id = json_object_get(id);
	w->pid = pid;
	w->fd = p[0];
	ag->net_worker = w;
	json_object_put(req);
}

static void net_next(struct agent *ag)
{
	if (ag->net_worker || !ag->net_queued)
		return;
	struct json_object *req = ag->net_queue[0];
	memmove(ag->net_queue, ag->net_queue + 1, --ag->net_queued * sizeof(*ag->net_queue));
	net_worker_start(ag, req);
}

static void net_enqueue(struct agent *ag, struct json_object *id, struct json_object *req)
{
	struct json_object **q = realloc(ag->net_queue, (ag->net_queued + 1) * sizeof(*q));
	if (!q) {
		agent_reply_err(ag, id, ENOMEM, "net: out of memory");
		return;
	}
	ag->net_queue = q;
	q[ag->net_queued++] = json_object_get(req);
	net_next(ag);
}

static void net_worker_read(struct agent *ag)
{
	struct worker *w = ag->net_worker;
	char chunk[4096];
	ssize_t n;
	while ((n = read(w->fd, chunk, sizeof(chunk))) > 0)
		if (pv_buf_add(&w->buf, chunk, (size_t)n))
			break;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF: the helper said all it had to say */
	struct json_object *m = w->buf.len ? json_tokener_parse(w->buf.data) : NULL;
	if (m)
		agent_send(ag, m);
	else
		agent_reply_err(ag, w->id, EIO, "net: the helper process died without an answer");
	close(w->fd);
	json_object_put(w->id);
	pv_buf_free(&w->buf);
	free(w);
	ag->net_worker = NULL;
	net_next(ag);
}

/* ---- requests ---- */

static void do_shutdown(struct agent *ag, struct json_object *id, struct json_object *req)
{
	if (!ag->pid1) {
		agent_reply_err(ag, id, EPERM,
				"shutdown: the agent is not PID 1 here; refusing to power off this machine");
		return;
	}
	struct json_object *v;
	int reboot_instead = json_object_object_get_ex(req, "reboot", &v) && json_object_get_boolean(v);
	agent_reply_ok(ag, id, NULL);
	/* give the reply up to 2 s to leave before the power goes */
	double end = pv_now() + 2;
	while (ag->fd >= 0 && ag->out_off < ag->out.len && pv_now() < end) {
		struct pollfd p = {.fd = ag->fd, .events = POLLOUT};
		if (poll(&p, 1, 100) > 0 && (p.revents & POLLOUT)) {
			ssize_t w = write(ag->fd, ag->out.data + ag->out_off, ag->out.len - ag->out_off);
			if (w > 0)
				ag->out_off += (size_t)w;
		}
	}
	pv_log("provium-agent: %s", reboot_instead ? "rebooting" : "powering off");
	sync();
	reboot(reboot_instead ? RB_AUTOBOOT : RB_POWER_OFF);
	pv_log("provium-agent: reboot(2): %s", strerror(errno));
}

static void handle_request(struct agent *ag, struct json_object *req)
{
	struct json_object *id = NULL, *opv = NULL;
	json_object_object_get_ex(req, "id", &id);
	const char *op = json_object_object_get_ex(req, "op", &opv) &&
				 json_object_is_type(opv, json_type_string)
			 ? json_object_get_string(opv)
			 : NULL;
	if (!op) {
		agent_reply_err(ag, id, EINVAL, "request has no \"op\": give one of exec, read_file, "
						"write_file, net, ping, shutdown");
	} else if (!strcmp(op, "ping")) {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "version", json_object_new_int(PV_AGENT_VERSION));
		agent_reply_ok(ag, id, r);
	} else if (!strcmp(op, "exec")) {
		exec_start(ag, id, req);
	} else if (!strcmp(op, "read_file")) {
		files_read(ag, id, req);
	} else if (!strcmp(op, "write_file")) {
		files_write(ag, id, req);
	} else if (!strcmp(op, "net")) {
		net_enqueue(ag, id, req);
	} else if (!strcmp(op, "shutdown")) {
		do_shutdown(ag, id, req);
	} else {
		agent_reply_err(ag, id, EOPNOTSUPP, "unknown op \"%.64s\": give one of exec, read_file, "
						    "write_file, net, ping, shutdown", op);
	}
}

static void handle_line(struct agent *ag, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *req = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
	int bad = !req || json_tokener_get_error(tok) != json_tokener_success;
	const char *why = tok ? json_tokener_error_desc(json_tokener_get_error(tok)) : "no memory";
	if (bad || !json_object_is_type(req, json_type_object))
		agent_reply_err(ag, NULL, EINVAL, "request is not a JSON object (%s): send one object per line",
				bad ? why : "other JSON type");
	else
		handle_request(ag, req);
	json_object_put(req);
	if (tok)
		json_tokener_free(tok);
}

/* ---- transport ---- */

static void host_gone(struct agent *ag)
{
	if (ag->link_up) {
		/* whoever asked is gone: drop their answers, greet the next one */
		ag->out.len = ag->out_off = 0;
		ag->in.len = 0;
		ag->in_skip = 0;
		send_ready(ag);
		ag->link_up = 0;
	}
	if (!ag->port) {
		if (!ag->pid1)
			exit(0); /* tests: the other end of the socket closed */
		close(ag->fd);
		ag->fd = -1; /* PID 1 with --fd and no peer: nothing left to serve */
	}
	ag->probe_at = pv_now() + PROBE_INTERVAL;
}

static void transport_read(struct agent *ag)
{
	char chunk[65536];
	ssize_t n = read(ag->fd, chunk, sizeof(chunk));
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			host_gone(ag);
		return;
	}
	if (n == 0) {
		host_gone(ag);
		return;
	}
	ag->link_up = 1;
	size_t start = 0;
	for (size_t i = 0; i < (size_t)n; i++) {
		if (chunk[i] != '\n')
			continue;
		if (ag->in_skip) {
			ag->in_skip = 0;
		} else if (ag->in.len) {
			if (!pv_buf_add(&ag->in, chunk + start, i - start))
				handle_line(ag, ag->in.data, ag->in.len);
			ag->in.len = 0;
		} else {
			handle_line(ag, chunk + start, i - start);
		}
		start = i + 1;
	}
	size_t rest = (size_t)n - start;
	if (ag->in_skip || !rest)
		return;
	if (ag->in.len + rest > PV_AGENT_MAX_LINE || pv_buf_add(&ag->in, chunk + start, rest)) {
		ag->in.len = 0;
		ag->in_skip = 1;
		agent_reply_err(ag, NULL, EMSGSIZE, "request line longer than %u bytes: send less data at once",
				PV_AGENT_MAX_LINE);
	}
}

static void transport_write(struct agent *ag)
{
	ssize_t w = write(ag->fd, ag->out.data + ag->out_off, ag->out.len - ag->out_off);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			host_gone(ag);
		return;
	}
	ag->link_up = 1;
	ag->out_off += (size_t)w;
	if (ag->out_off == ag->out.len) {
		ag->out.len = ag->out_off = 0;
		if (ag->out.cap > (1u << 20)) /* give back a big reply's memory */
			pv_buf_free(&ag->out);
	}
}

static void port_open(struct agent *ag)
{
	static int said;
	ag->fd = open(ag->port, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (ag->fd < 0) {
		if (!said++)
			pv_log("provium-agent: %s: %s; waiting for it", ag->port, strerror(errno));
		ag->probe_at = pv_now() + PROBE_INTERVAL;
	}
}

/* ---- children ---- */

static void reap(struct agent *ag)
{
	struct signalfd_siginfo si;
	while (read(ag->sigfd, &si, sizeof(si)) > 0)
		;
	int st;
	pid_t pid;
	/* PID 1 inherits every orphan: reap them all, not just our own */
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		exec_child_exited(ag, pid, st);
}

/* ---- the loop ---- */

static int poll_timeout(struct agent *ag, double now)
{
	double next = exec_next_deadline(ag);
	if ((ag->fd < 0 || !ag->link_up) && ag->probe_at > 0 && (next < 0 || ag->probe_at < next))
		next = ag->probe_at;
	if (next < 0)
		return -1;
	double ms = (next - now) * 1000 + 1;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static void loop_once(struct agent *ag)
{
	double now = pv_now();
	if (ag->port && ag->fd < 0 && now >= ag->probe_at)
		port_open(ag);
	int probing = ag->port && ag->fd >= 0 && !ag->link_up && now < ag->probe_at;
	size_t cap = 3 + exec_count_fds(ag);
	struct pollfd *p = calloc(cap, sizeof(*p));
	if (!p) {
		poll(NULL, 0, 100);
		return;
	}
	p[0] = (struct pollfd){.fd = probing ? -1 : ag->fd, .events = POLLIN};
	if (ag->out_off < ag->out.len)
		p[0].events |= POLLOUT;
	p[1] = (struct pollfd){.fd = ag->sigfd, .events = POLLIN};
	p[2] = (struct pollfd){.fd = ag->net_worker ? ag->net_worker->fd : -1, .events = POLLIN};
	size_t n = 3 + exec_fill(ag, p + 3);
	int rc = poll(p, n, poll_timeout(ag, now));
	if (rc < 0 && errno != EINTR)
		pv_log("provium-agent: poll: %s", strerror(errno));
	if (rc > 0) {
		if (p[0].revents & POLLIN)
			transport_read(ag);
		else if (p[0].revents & (POLLHUP | POLLERR))
			host_gone(ag);
		if ((p[0].revents & POLLOUT) && ag->fd >= 0)
			transport_write(ag);
		if (p[1].revents)
			reap(ag);
		if (p[2].revents && ag->net_worker)
			net_worker_read(ag);
		exec_events(ag, p + 3, n - 3);
	}
	free(p);
	exec_tick(ag);
}

/* PID 1 may start with no descriptors at all; a child's dup2 onto 0-2
 * would go wrong if our own pipes landed there. */
static void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int c = open("/dev/console", O_RDWR | O_NOCTTY);
		if (c < 0)
			c = open("/dev/null", O_RDWR);
		if (c >= 0 && c != fd) {
			dup2(c, fd);
			close(c);
		}
	}
}

/* As init, whatever the initramfs left on 1 and 2, our lines go to the
 * console, which QEMU records as the node's console.log. */
static void console_stdio(void)
{
	int c = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (c < 0)
		return;
	dup2(c, 1);
	dup2(c, 2);
	close(c);
}

static int setup_signals(struct agent *ag)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	ag->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ag->sigfd < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	/* outside PID 1 (tests), orphans of our commands still come back to us */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	return 0;
}

static int parse_args(int argc, char **argv, struct agent *ag)
{
	ag->port = DEFAULT_PORT;
	ag->etc = "/etc";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--port") && v) {
			ag->port = v;
		} else if (!strcmp(a, "--fd") && v) {
			char *end;
			long fd = strtol(v, &end, 10);
			if (*end || fd < 0 || fd > 1 << 20)
				return -EINVAL;
			ag->fd = (int)fd;
			ag->port = NULL;
		} else if (!strcmp(a, "--etc") && v) {
			ag->etc = v;
		} else {
			return -EINVAL;
		}
		i++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct agent ag = {.fd = -1, .sigfd = -1};
	ag.pid1 = getpid() == 1;
	ensure_stdio();
	if (ag.pid1)
		console_stdio();
	if (parse_args(argc, argv, &ag) < 0) {
		usage();
		if (!ag.pid1)
			return 2;
		ag.port = DEFAULT_PORT; /* init must serve anyway */
		ag.fd = -1;
	}
	int rc = setup_signals(&ag);
	if (rc < 0)
		pv_log("provium-agent: signals: %s; children may stay zombies", strerror(-rc));
	if (ag.port) {
		port_open(&ag);
	} else {
		fcntl(ag.fd, F_SETFD, FD_CLOEXEC);
		pv_set_nonblock(ag.fd);
	}
	pv_log("provium-agent %d: serving %s (pid %d)", PV_AGENT_VERSION, ag.port ? ag.port : "an inherited descriptor",
	       (int)getpid());
	send_ready(&ag);
	for (;;)
		loop_once(&ag);
}
