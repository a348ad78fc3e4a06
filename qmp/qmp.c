#include "qmp/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* QEMU sends one JSON object per line; a reply bigger than this (query-qom-tree
 * of a huge machine) is not something Provium asks for, and the cap keeps a
 * confused peer from growing the buffer forever. */
#define QMP_MAX_LINE (4u << 20)
/* Events nobody polls for must not pile up without bound. */
#define QMP_MAX_QUEUED 1024

struct qmp_ev {
	json_object *msg; /* the whole event message */
	struct qmp_ev *next;
};

struct pv_qmp {
	int fd;
	bool dead;
	char *path;
	unsigned long next_id;
	char *buf;
	size_t len, cap;
	struct qmp_ev *head, *tail;
	size_t n_ev;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
	long long r = deadline - now_ms();
	return r < 0 ? 0 : (int)r;
}

/* ---- input: bytes to lines to JSON messages ---- */

static int mark_dead(struct pv_qmp *q)
{
	q->dead = true;
	return -ECONNRESET;
}

/* One recv into the buffer. 0 = got bytes, -EAGAIN = nothing, -ECONNRESET. */
static int recv_some(struct pv_qmp *q, int flags)
{
	if (q->cap - q->len < 4096) {
		size_t ncap = q->cap ? q->cap * 2 : 8192;
		if (ncap > QMP_MAX_LINE + 8192)
			return mark_dead(q);
		char *nb = realloc(q->buf, ncap);
		if (!nb)
			return -ENOMEM;
		q->buf = nb;
		q->cap = ncap;
	}
	ssize_t n = recv(q->fd, q->buf + q->len, q->cap - q->len, flags);
	if (n > 0) {
		q->len += (size_t)n;
		return 0;
	}
	if (n == 0)
		return mark_dead(q);
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return mark_dead(q);
}

/* Take one complete line off the buffer and parse it. 1 = *out set, 0 = no
 * complete line yet. Lines that are not JSON objects are skipped. */
static int next_msg(struct pv_qmp *q, json_object **out)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		if (!nl)
			return 0;
		size_t linelen = (size_t)(nl - q->buf);
		json_tokener *tok = json_tokener_new();
		json_object *o = tok ? json_tokener_parse_ex(tok, q->buf, (int)linelen)
				     : NULL;
		if (tok)
			json_tokener_free(tok);
		memmove(q->buf, nl + 1, q->len - linelen - 1);
		q->len -= linelen + 1;
		if (o && json_object_is_type(o, json_type_object)) {
			*out = o;
			return 1;
		}
		json_object_put(o);
	}
}

/* Next message, waiting until the deadline. -ETIMEDOUT, -ECONNRESET. */
static int wait_msg(struct pv_qmp *q, long long deadline, json_object **out)
{
	for (;;) {
		if (next_msg(q, out))
			return 0;
		if (q->dead)
			return -ECONNRESET;
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, remaining(deadline));
		if (r < 0 && errno != EINTR)
			return mark_dead(q);
		if (r == 0 && remaining(deadline) == 0)
			return -ETIMEDOUT;
		if (r > 0) {
			int rc = recv_some(q, MSG_DONTWAIT);
			if (rc < 0 && rc != -EAGAIN)
				return rc;
		}
	}
}

static void queue_event(struct pv_qmp *q, json_object *msg)
{
	if (q->n_ev >= QMP_MAX_QUEUED) {
		struct qmp_ev *old = q->head;
		q->head = old->next;
		if (!q->head)
			q->tail = NULL;
		json_object_put(old->msg);
		free(old);
		q->n_ev--;
	}
	struct qmp_ev *e = calloc(1, sizeof(*e));
	if (!e) {
		json_object_put(msg);
		return;
	}
	e->msg = msg;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->n_ev++;
}

static bool is_event(json_object *msg)
{
	return json_object_object_get_ex(msg, "event", NULL);
}

static const char *str_member(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* ---- output ---- */

static int send_all(struct pv_qmp *q, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return mark_dead(q);
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_command(struct pv_qmp *q, const char *name, json_object *args,
			const char *id)
{
	json_object *cmd = json_object_new_object();
	if (!cmd)
		return -ENOMEM;
	json_object_object_add(cmd, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(cmd, "arguments", json_object_get(args));
	json_object_object_add(cmd, "id", json_object_new_string(id));
	const char *s = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	int rc = -ENOMEM;
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		rc = send_all(q, line, n + 1);
		free(line);
	}
	json_object_put(cmd);
	return rc;
}

/* ---- replies ---- */

static int error_errno(const char *cls, const char *desc)
{
	if (cls && !strcmp(cls, "DeviceNotFound"))
		return ENOENT;
	if (cls && !strcmp(cls, "CommandNotFound"))
		return EOPNOTSUPP;
	if (desc && (strstr(desc, "Duplicate") || strstr(desc, "already exists") ||
		     strstr(desc, "already in use")))
		return EEXIST;
	if (desc && (strstr(desc, "not found") || strstr(desc, "No such")))
		return ENOENT;
	return EIO;
}

static int reply_result(json_object *msg, const char *name, json_object **ret,
			struct pv_err *err)
{
	json_object *v;
	if (json_object_object_get_ex(msg, "return", &v)) {
		if (ret)
			*ret = json_object_get(v);
		return 0;
	}
	json_object *e = NULL;
	json_object_object_get_ex(msg, "error", &e);
	const char *cls = str_member(e, "class");
	const char *desc = str_member(e, "desc");
	return pv_err_set(err, error_errno(cls, desc), "QEMU refused %s: %s (%s)",
			  name, desc ? desc : "no description", cls ? cls : "?");
}

static int died(struct pv_qmp *q, const char *what, struct pv_err *err)
{
	return pv_err_set(err, ECONNRESET,
			  "%s: QEMU closed its QMP socket %s (it exited or was killed); "
			  "see its qemu.log",
			  what, q->path);
}

int pv_qmp_command(struct pv_qmp *q, const char *name, json_object *args,
		   int timeout_ms, json_object **ret, struct pv_err *err)
{
	if (ret)
		*ret = NULL;
	if (q->dead)
		return died(q, name, err);
	char id[32];
	snprintf(id, sizeof(id), "pv-%lu", ++q->next_id);
	long long deadline = now_ms() + timeout_ms;
	int rc = send_command(q, name, args, id);
	if (rc == -ECONNRESET)
		return died(q, name, err);
	if (rc < 0)
		return pv_err_set(err, -rc, "qmp %s: cannot send: %s", name, strerror(-rc));
	for (;;) {
		json_object *msg;
		rc = wait_msg(q, deadline, &msg);
		if (rc == -ETIMEDOUT)
			return pv_err_set(err, ETIMEDOUT,
					  "qmp %s: no reply from QEMU within %d ms on %s",
					  name, timeout_ms, q->path);
		if (rc < 0)
			return died(q, name, err);
		if (is_event(msg)) {
			queue_event(q, msg);
			continue;
		}
		const char *rid = str_member(msg, "id");
		if (rid && !strcmp(rid, id)) {
			rc = reply_result(msg, name, ret, err);
			json_object_put(msg);
			return rc;
		}
		/* a late reply to a command that timed out, or the greeting */
		json_object_put(msg);
	}
}

/* ---- connect ---- */

static int dial(const char *path, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(s);
		return -e;
	}
	*fd = s;
	return 0;
}

/* Sleep up to ms, or less if abort_fd becomes readable: 1 if it did. */
static int nap(int ms, int abort_fd)
{
	struct pollfd p = {.fd = abort_fd, .events = POLLIN};
	if (abort_fd < 0) {
		struct timespec ts = {0, (long)ms * 1000000L};
		nanosleep(&ts, NULL);
		return 0;
	}
	return poll(&p, 1, ms) > 0;
}

static int dial_retry(const char *path, long long deadline, int abort_fd, int *fd,
		      struct pv_err *err)
{
	for (;;) {
		int rc = dial(path, fd);
		if (rc == 0)
			return 0;
		if (rc == -ENAMETOOLONG)
			return pv_err_set(err, ENAMETOOLONG,
					  "QMP socket path %s is longer than a unix socket "
					  "allows (107 bytes): use a shorter run directory",
					  path);
		if (rc != -ENOENT && rc != -ECONNREFUSED)
			return pv_err_set(err, -rc, "cannot connect to QMP socket %s: %s",
					  path, strerror(-rc));
		if (remaining(deadline) == 0)
			return pv_err_set(err, ETIMEDOUT,
					  "QMP socket %s did not accept a connection in time",
					  path);
		int ms = remaining(deadline);
		if (nap(ms < 10 ? ms : 10, abort_fd))
			return pv_err_set(err, ECHILD,
					  "QEMU exited before its QMP socket %s was ready",
					  path);
	}
}

static int greet(struct pv_qmp *q, long long deadline, struct pv_err *err)
{
	json_object *msg;
	int rc = wait_msg(q, deadline, &msg);
	if (rc == -ETIMEDOUT)
		return pv_err_set(err, ETIMEDOUT, "no QMP greeting on %s in time",
				  q->path);
	if (rc < 0)
		return died(q, "QMP greeting", err);
	bool ok = json_object_object_get_ex(msg, "QMP", NULL);
	json_object_put(msg);
	if (!ok)
		return pv_err_set(err, EPROTO,
				  "%s does not speak QMP (no greeting): is it a QEMU "
				  "monitor in control mode?",
				  q->path);
	return pv_qmp_command(q, "qmp_capabilities", NULL, remaining(deadline), NULL,
			      err);
}

int pv_qmp_connect_until(const char *path, int timeout_ms, int abort_fd,
			 struct pv_qmp **out, struct pv_err *err)
{
	long long deadline = now_ms() + timeout_ms;
	struct pv_qmp *q = calloc(1, sizeof(*q));
	if (!q || !(q->path = strdup(path))) {
		free(q);
		return pv_err_set(err, ENOMEM, "out of memory");
	}
	q->fd = -1;
	int rc = dial_retry(path, deadline, abort_fd, &q->fd, err);
	if (rc == 0)
		rc = greet(q, deadline, err);
	if (rc < 0) {
		pv_qmp_close(q);
		return rc;
	}
	*out = q;
	return 0;
}

int pv_qmp_connect(const char *path, int timeout_ms, struct pv_qmp **q,
		   struct pv_err *err)
{
	return pv_qmp_connect_until(path, timeout_ms, -1, q, err);
}

/* ---- events ---- */

int pv_qmp_fd(const struct pv_qmp *q)
{
	return q->fd;
}

int pv_qmp_dead(const struct pv_qmp *q)
{
	return q->dead;
}

static struct qmp_ev *pop_event(struct pv_qmp *q)
{
	struct qmp_ev *e = q->head;
	if (e) {
		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		q->n_ev--;
	}
	return e;
}

/* Move every complete message already received (and whatever the socket has
 * right now) into the event queue; replies nobody waits for are dropped. */
static void drain_socket(struct pv_qmp *q)
{
	json_object *msg;
	for (;;) {
		while (next_msg(q, &msg)) {
			if (is_event(msg))
				queue_event(q, msg);
			else
				json_object_put(msg);
		}
		if (q->dead || recv_some(q, MSG_DONTWAIT) < 0)
			break;
	}
	while (next_msg(q, &msg)) {
		if (is_event(msg))
			queue_event(q, msg);
		else
			json_object_put(msg);
	}
}

int pv_qmp_poll_events(struct pv_qmp *q, pv_qmp_event_cb cb, void *arg)
{
	drain_socket(q);
	int n = 0;
	struct qmp_ev *e;
	while ((e = pop_event(q))) {
		json_object *data = NULL;
		json_object_object_get_ex(e->msg, "data", &data);
		if (cb)
			cb(str_member(e->msg, "event"), data, arg);
		json_object_put(e->msg);
		free(e);
		n++;
	}
	return n ? n : (q->dead ? -ECONNRESET : 0);
}

static bool event_matches(json_object *msg, const char *name, const char *device)
{
	const char *ev = str_member(msg, "event");
	if (!ev || strcmp(ev, name))
		return false;
	if (!device)
		return true;
	json_object *data = NULL;
	json_object_object_get_ex(msg, "data", &data);
	const char *dev = str_member(data, "device");
	return dev && !strcmp(dev, device);
}

/* Remove and return the first queued event that matches, or NULL. */
static json_object *take_queued(struct pv_qmp *q, const char *name, const char *device)
{
	struct qmp_ev *prev = NULL;
	for (struct qmp_ev *e = q->head; e; prev = e, e = e->next) {
		if (!event_matches(e->msg, name, device))
			continue;
		if (prev)
			prev->next = e->next;
		else
			q->head = e->next;
		if (q->tail == e)
			q->tail = prev;
		q->n_ev--;
		json_object *msg = e->msg;
		free(e);
		return msg;
	}
	return NULL;
}

static int give_event(json_object *msg, json_object **data)
{
	if (data) {
		json_object *d = NULL;
		json_object_object_get_ex(msg, "data", &d);
		*data = json_object_get(d);
	}
	json_object_put(msg);
	return 0;
}

int pv_qmp_wait_event(struct pv_qmp *q, const char *name, const char *device,
		      int timeout_ms, json_object **data, struct pv_err *err)
{
	long long deadline = now_ms() + timeout_ms;
	if (data)
		*data = NULL;
	json_object *msg = take_queued(q, name, device);
	if (msg)
		return give_event(msg, data);
	for (;;) {
		int rc = wait_msg(q, deadline, &msg);
		if (rc == -ETIMEDOUT)
			return pv_err_set(err, ETIMEDOUT,
					  "QEMU sent no %s%s%s event within %d ms", name,
					  device ? " for " : "", device ? device : "",
					  timeout_ms);
		if (rc < 0)
			return died(q, name, err);
		if (event_matches(msg, name, device))
			return give_event(msg, data);
		if (is_event(msg))
			queue_event(q, msg);
		else
			json_object_put(msg);
	}
}

void pv_qmp_close(struct pv_qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	struct qmp_ev *e;
	while ((e = pop_event(q))) {
		json_object_put(e->msg);
		free(e);
	}
	free(q->buf);
	free(q->path);
	free(q);
}
