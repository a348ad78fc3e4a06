#include "guest/lib/agent_client.h"
#include "guest/agent/base64.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PING_INTERVAL_MS 100
#define MAX_REPLY_LINE (200u << 20) /* two 16 MiB streams, escaped, fit */

struct pending {
	struct pending *next;
	int64_t id;
	struct json_object *reply; /* set by the reader */
	pthread_cond_t cond;
};

struct pv_agent {
	int fd;
	int wake[2]; /* close() pokes the reader through it: shutdown() needs a socket */
	pthread_t reader;
	int reader_started;
	pthread_mutex_t lock; /* pending, next_id, dead */
	pthread_mutex_t wlock; /* one request line at a time on the wire */
	struct pending *pending;
	int64_t next_id;
	int dead; /* positive errno once the connection is gone */
};

static const int json_flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

/* ---- time ---- */

static struct timespec deadline_after(double s)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double whole = (double)(int64_t)s;
	ts.tv_sec += (time_t)whole;
	ts.tv_nsec += (long)((s - whole) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static int ms_left(const struct timespec *end)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ms = (int64_t)(end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ---- reader thread ---- */

/* Called with the lock held: wake every caller, they see `dead`. */
static void fail_all(struct pv_agent *a, int code)
{
	if (!a->dead)
		a->dead = code;
	for (struct pending *p = a->pending; p; p = p->next)
		pthread_cond_signal(&p->cond);
}

static void deliver(struct pv_agent *a, struct json_object *msg)
{
	struct json_object *idv;
	if (!json_object_object_get_ex(msg, "id", &idv) || !json_object_is_type(idv, json_type_int)) {
		json_object_put(msg); /* an event ("ready") or a reply to no one */
		return;
	}
	int64_t id = json_object_get_int64(idv);
	pthread_mutex_lock(&a->lock);
	struct pending *p = a->pending;
	while (p && p->id != id)
		p = p->next;
	if (p && !p->reply) {
		p->reply = msg;
		pthread_cond_signal(&p->cond);
		msg = NULL;
	}
	pthread_mutex_unlock(&a->lock);
	json_object_put(msg); /* a late reply to a caller that gave up */
}

static void handle_line(struct pv_agent *a, const char *line, size_t len)
{
	if (!len)
		return;
	struct json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (!tok)
		return;
	struct json_object *msg = json_tokener_parse_ex(tok, line, (int)len);
	if (msg && json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(msg, json_type_object))
		deliver(a, msg);
	else
		json_object_put(msg);
	json_tokener_free(tok);
}

struct linebuf {
	char *data;
	size_t len, cap;
};

static int linebuf_add(struct linebuf *b, const char *s, size_t n)
{
	if (!n)
		return 0;
	if (b->len + n > MAX_REPLY_LINE)
		return -EMSGSIZE;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + n)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

/* Split a chunk into lines; the unfinished tail stays in b. */
static int feed(struct pv_agent *a, struct linebuf *b, const char *chunk, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (chunk[i] != '\n')
			continue;
		if (b->len) {
			int rc = linebuf_add(b, chunk + start, i - start);
			if (rc)
				return rc;
			handle_line(a, b->data, b->len);
			b->len = 0;
		} else {
			handle_line(a, chunk + start, i - start);
		}
		start = i + 1;
	}
	return linebuf_add(b, chunk + start, n - start);
}

static void *reader_main(void *arg)
{
	struct pv_agent *a = arg;
	struct linebuf b = {0};
	char *chunk = malloc(65536);
	int code = ECONNRESET;
	while (chunk) {
		struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = a->wake[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		ssize_t n = read(a->fd, chunk, 65536);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		int rc = feed(a, &b, chunk, (size_t)n);
		if (rc) { /* a broken stream cannot be resynchronised reliably */
			code = -rc;
			break;
		}
	}
	free(chunk);
	free(b.data);
	pthread_mutex_lock(&a->lock);
	fail_all(a, chunk ? code : ENOMEM);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* ---- calls ---- */

/* Write the whole line before `end`, or kill the connection: a half-written
 * line would corrupt the stream for every other caller. */
static int send_line(struct pv_agent *a, const char *s, size_t len, const struct timespec *end)
{
	int rc = 0;
	pthread_mutex_lock(&a->wlock);
	size_t off = 0;
	while (off < len && !rc) {
		struct pollfd p = {.fd = a->fd, .events = POLLOUT};
		int pr = poll(&p, 1, ms_left(end));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			rc = pr ? -errno : -ETIMEDOUT;
			break;
		}
		ssize_t w = send(a->fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == ENOTSOCK)
			w = write(a->fd, s + off, len - off);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			rc = -errno;
		else
			off += (size_t)w;
	}
	pthread_mutex_unlock(&a->wlock);
	if (rc && off) {
		pthread_mutex_lock(&a->lock);
		fail_all(a, ECONNRESET);
		pthread_mutex_unlock(&a->lock);
		shutdown(a->fd, SHUT_RDWR);
	}
	return rc;
}

static void unlink_pending(struct pv_agent *a, struct pending *p)
{
	struct pending **pp = &a->pending;
	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
}

static struct pending *pending_new(struct pv_agent *a)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->id = ++a->next_id;
	p->next = a->pending;
	a->pending = p;
	return p;
}

static int conn_err(struct pv_err *err, const char *op, int code)
{
	if (code == ECONNRESET)
		return pv_err_set(err, code, "agent %s: the connection to the guest agent is gone "
					     "(the VM stopped or its agent died): boot the node again", op);
	return pv_err_set(err, code, "agent %s: connection failed: %s", op, strerror(code));
}

/* Send {id, op, ...msg} and wait for the reply object (caller puts). */
static int roundtrip(struct pv_agent *a, const char *op, struct json_object *msg, double timeout_s,
		     struct json_object **reply, struct pv_err *err)
{
	struct timespec end = deadline_after(timeout_s);
	pthread_mutex_lock(&a->lock);
	int dead = a->dead;
	struct pending *p = dead ? NULL : pending_new(a);
	pthread_mutex_unlock(&a->lock);
	if (dead)
		return conn_err(err, op, dead);
	if (!p)
		return pv_err_set(err, ENOMEM, "agent %s: out of memory", op);
	json_object_object_add(msg, "id", json_object_new_int64(p->id));
	json_object_object_add(msg, "op", json_object_new_string(op));
	size_t len;
	const char *s = json_object_to_json_string_length(msg, json_flags, &len);
	int rc = 0;
	char *line = s ? malloc(len + 1) : NULL;
	if (!line) {
		rc = pv_err_set(err, ENOMEM, "agent %s: out of memory", op);
	} else {
		memcpy(line, s, len);
		line[len] = '\n';
		rc = send_line(a, line, len + 1, &end);
		free(line);
	}
	pthread_mutex_lock(&a->lock);
	while (!rc && !p->reply && !a->dead) {
		int w = pthread_cond_timedwait(&p->cond, &a->lock, &end);
		if (w == ETIMEDOUT && !p->reply)
			rc = -ETIMEDOUT;
	}
	if (!rc && !p->reply)
		rc = -a->dead;
	unlink_pending(a, p);
	pthread_mutex_unlock(&a->lock);
	pthread_cond_destroy(&p->cond);
	if (rc == -ETIMEDOUT)
		pv_err_set(err, ETIMEDOUT, "agent %s: no answer within %.1f s: the guest is stuck or too slow",
			   op, timeout_s);
	else if (rc)
		conn_err(err, op, -rc);
	*reply = rc ? NULL : p->reply;
	if (rc)
		json_object_put(p->reply);
	free(p);
	return rc;
}

/* Reply → 0 with *result (a new reference or NULL), or the agent's errno. */
static int unpack(struct json_object *reply, const char *op, struct json_object **result, struct pv_err *err)
{
	struct json_object *v;
	*result = NULL;
	if (json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v)) {
		if (json_object_object_get_ex(reply, "result", &v) && v)
			*result = json_object_get(v);
		return 0;
	}
	int code = json_object_object_get_ex(reply, "errno", &v) ? json_object_get_int(v) : 0;
	if (code <= 0)
		code = EIO;
	const char *msg = json_object_object_get_ex(reply, "error", &v) ? json_object_get_string(v) : NULL;
	return pv_err_set(err, code, "agent %s: %s", op, msg ? msg : strerror(code));
}

/* body (owned) → result object (caller puts) */
static int call_obj(struct pv_agent *a, const char *op, struct json_object *body, double timeout_s,
		    struct json_object **result, struct pv_err *err)
{
	struct json_object *reply = NULL;
	*result = NULL;
	if (!body)
		return pv_err_set(err, ENOMEM, "agent %s: out of memory", op);
	int rc = roundtrip(a, op, body, timeout_s, &reply, err);
	json_object_put(body);
	if (rc)
		return rc;
	rc = unpack(reply, op, result, err);
	json_object_put(reply);
	return rc;
}

static char *to_text(struct json_object *o)
{
	const char *s = o ? json_object_to_json_string_ext(o, json_flags) : NULL;
	return s ? strdup(s) : NULL;
}

int pv_agent_call(struct pv_agent *a, const char *op, const char *body_json, double timeout_s,
		  char **result_json, struct pv_err *err)
{
	struct json_object *body = body_json ? json_tokener_parse(body_json) : json_object_new_object();
	if (body_json && (!body || !json_object_is_type(body, json_type_object))) {
		json_object_put(body);
		return pv_err_set(err, EINVAL, "agent %s: the request body is not a JSON object", op);
	}
	struct json_object *result;
	int rc = call_obj(a, op, body, timeout_s > 0 ? timeout_s : PV_AGENT_CALL_TIMEOUT_S, &result, err);
	if (!rc && result_json) {
		*result_json = result ? to_text(result) : NULL;
		if (result && !*result_json)
			rc = pv_err_set(err, ENOMEM, "agent %s: out of memory", op);
	}
	json_object_put(result);
	return rc;
}

int pv_agent_ping(struct pv_agent *a, int timeout_ms, struct pv_err *err)
{
	struct json_object *result;
	int rc = call_obj(a, "ping", json_object_new_object(), timeout_ms / 1000.0, &result, err);
	json_object_put(result);
	return rc;
}

/* ---- exec ---- */

/* The run request as an object: JSON text, or a plain shell line. */
static struct json_object *exec_body(const char *request)
{
	size_t n = strlen(request);
	while (n && (request[n - 1] == '\n' || request[n - 1] == '\r'))
		n--;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = tok ? json_tokener_parse_ex(tok, request, (int)n) : NULL;
	int whole = tok && json_tokener_get_error(tok) == json_tokener_success;
	if (tok)
		json_tokener_free(tok);
	if (o && whole && json_object_is_type(o, json_type_object))
		return o;
	json_object_put(o);
	o = json_object_new_object();
	json_object_object_add(o, "cmd", json_object_new_string_len(request, (int)n));
	return o;
}

int pv_agent_exec(struct pv_agent *a, const char *request_json, double timeout_s, char **result_json,
		  struct pv_err *err)
{
	*result_json = NULL;
	struct json_object *body = exec_body(request_json ? request_json : "");
	if (!body)
		return pv_err_set(err, ENOMEM, "agent exec: out of memory");
	struct json_object *v;
	double cmd_timeout = 60.0;
	if (timeout_s > 0) {
		json_object_object_add(body, "timeout", json_object_new_double(timeout_s));
		cmd_timeout = timeout_s;
	} else if (json_object_object_get_ex(body, "timeout", &v) && json_object_get_double(v) > 0) {
		cmd_timeout = json_object_get_double(v);
	}
	struct json_object *result;
	int rc = call_obj(a, "exec", body, cmd_timeout + PV_AGENT_SLACK_S, &result, err);
	if (!rc && !(*result_json = to_text(result)))
		rc = pv_err_set(err, ENOMEM, "agent exec: out of memory or no result");
	json_object_put(result);
	return rc;
}

/* ---- net, files, shutdown ---- */

static struct json_object *nic_json(const struct pv_agent_nic *n)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "mac", json_object_new_string(n->mac ? n->mac : ""));
	if (n->ifname)
		json_object_object_add(o, "ifname", json_object_new_string(n->ifname));
	if (n->cidr)
		json_object_object_add(o, "cidr", json_object_new_string(n->cidr));
	json_object_object_add(o, "up", json_object_new_boolean(n->up));
	return o;
}

int pv_agent_net(struct pv_agent *a, const struct pv_agent_nic *nics, size_t n, const char *hosts_text,
		 const char *gateway, struct pv_err *err)
{
	struct json_object *body = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, nic_json(&nics[i]));
	json_object_object_add(body, "nics", arr);
	if (hosts_text)
		json_object_object_add(body, "hosts", json_object_new_string(hosts_text));
	if (gateway)
		json_object_object_add(body, "gateway", json_object_new_string(gateway));
	struct json_object *result;
	int rc = call_obj(a, "net", body, PV_AGENT_CALL_TIMEOUT_S, &result, err);
	json_object_put(result);
	return rc;
}

int pv_agent_read_file(struct pv_agent *a, const char *path, char **data, size_t *len,
		       struct pv_err *err)
{
	*data = NULL;
	*len = 0;
	struct json_object *body = json_object_new_object(), *result, *v;
	json_object_object_add(body, "path", json_object_new_string(path));
	int rc = call_obj(a, "read_file", body, PV_AGENT_CALL_TIMEOUT_S, &result, err);
	if (rc)
		return rc;
	unsigned char *buf = NULL;
	if (!json_object_object_get_ex(result, "data", &v) || !json_object_is_type(v, json_type_string) ||
	    pv_b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), &buf, len)) {
		rc = pv_err_set(err, EIO, "agent read_file %s: the agent sent no valid base64 \"data\"", path);
	} else {
		buf[*len] = '\0'; /* decode allocates 3 bytes of room past the data */
		*data = (char *)buf;
	}
	json_object_put(result);
	return rc;
}

int pv_agent_write_file(struct pv_agent *a, const char *path, const void *data, size_t len, int mode,
			struct pv_err *err)
{
	char *enc = pv_b64_encode(data, len);
	if (!enc)
		return pv_err_set(err, ENOMEM, "agent write_file %s: out of memory", path);
	struct json_object *body = json_object_new_object(), *result;
	json_object_object_add(body, "path", json_object_new_string(path));
	json_object_object_add(body, "data", json_object_new_string(enc));
	json_object_object_add(body, "mode", json_object_new_int(mode));
	free(enc);
	int rc = call_obj(a, "write_file", body, PV_AGENT_CALL_TIMEOUT_S, &result, err);
	json_object_put(result);
	return rc;
}

int pv_agent_shutdown(struct pv_agent *a, struct pv_err *err)
{
	struct json_object *result;
	int rc = call_obj(a, "shutdown", json_object_new_object(), 10.0, &result, err);
	json_object_put(result);
	return rc;
}

/* ---- lifetime ---- */

int pv_agent_alive(struct pv_agent *a)
{
	pthread_mutex_lock(&a->lock);
	int alive = !a->dead;
	pthread_mutex_unlock(&a->lock);
	return alive;
}

static int wait_ready(struct pv_agent *a, int timeout_ms, struct pv_err *err)
{
	struct timespec end = deadline_after(timeout_ms / 1000.0);
	/* pings sent before the guest opened its port wait in QEMU and are all
	 * answered later; each one gives up after an interval so the next is sent */
	for (;;) {
		int left = ms_left(&end);
		int slice = left < PING_INTERVAL_MS ? left : PING_INTERVAL_MS;
		struct pv_err e = {0};
		int rc = pv_agent_ping(a, slice > 0 ? slice : 1, &e);
		if (rc == 0)
			return 0;
		if (rc != -ETIMEDOUT) {
			if (err)
				*err = e;
			return rc;
		}
		if (ms_left(&end) <= 0)
			return pv_err_set(err, ETIMEDOUT,
					  "agent: no answer from the guest agent within %d ms: see the node's "
					  "console.log",
					  timeout_ms);
	}
}

int pv_agent_from_fd(int fd, int timeout_ms, struct pv_agent **out, struct pv_err *err)
{
	*out = NULL;
	struct pv_agent *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return pv_err_set(err, ENOMEM, "agent: out of memory");
	}
	a->fd = fd;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->wlock, NULL);
	if (pipe2(a->wake, O_CLOEXEC) < 0) {
		int e = errno;
		a->wake[0] = a->wake[1] = -1;
		pv_agent_close(a);
		return pv_err_set(err, e, "agent: pipe: %s", strerror(e));
	}
	int rc = pthread_create(&a->reader, NULL, reader_main, a);
	if (rc) {
		pv_agent_close(a);
		return pv_err_set(err, rc, "agent: cannot start the reader thread: %s", strerror(rc));
	}
	a->reader_started = 1;
	rc = wait_ready(a, timeout_ms, err);
	if (rc) {
		pv_agent_close(a);
		return rc;
	}
	*out = a;
	return 0;
}

static int connect_unix(const char *path, const struct timespec *end, struct pv_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return pv_err_set(err, ENAMETOOLONG, "agent: socket path %s is too long: use a shorter "
						     "state directory", path);
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return pv_err_set(err, errno, "agent: socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		/* QEMU creates the socket a moment after it starts */
		if ((e != ENOENT && e != ECONNREFUSED) || ms_left(end) <= 0)
			return pv_err_set(err, e, "agent: connecting to %s: %s: is QEMU running?", path,
					  strerror(e));
		usleep(20 * 1000);
	}
}

int pv_agent_connect(const char *path, int timeout_ms, struct pv_agent **a, struct pv_err *err)
{
	*a = NULL;
	struct timespec end = deadline_after(timeout_ms / 1000.0);
	int fd = connect_unix(path, &end, err);
	if (fd < 0)
		return fd;
	return pv_agent_from_fd(fd, ms_left(&end), a, err);
}

void pv_agent_close(struct pv_agent *a)
{
	if (!a)
		return;
	if (a->reader_started) {
		ssize_t w = write(a->wake[1], "x", 1);
		(void)w;
		pthread_join(a->reader, NULL);
	}
	for (int i = 0; i < 2; i++)
		if (a->wake[i] >= 0)
			close(a->wake[i]);
	close(a->fd);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->wlock);
	free(a);
}
