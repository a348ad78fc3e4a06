/* provium-agent: the in-guest agent. One process, one poll loop; every
 * exec and every network change runs in a forked child so a slow command
 * never holds up another request. See docs/agent-protocol.md. */
#ifndef PV_AGENT_H
#define PV_AGENT_H

#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#define PV_AGENT_VERSION 1
#define PV_AGENT_MAX_LINE (96u << 20)   /* a request line; base64 of 64 MiB fits */
#define PV_AGENT_MAX_FILE (64u << 20)   /* read_file / write_file payload */
#define PV_AGENT_MAX_OUTPUT (16u << 20) /* per stream of an exec; the rest is cut */
#define PV_AGENT_DEFAULT_TIMEOUT 60.0

struct pv_buf {
	char *data;
	size_t len, cap;
};

/* An output stream of an exec (stdout or stderr). */
struct job_stream {
	int fd; /* -1 once closed */
	struct pv_buf buf;
	int cut; /* more than PV_AGENT_MAX_OUTPUT arrived */
};

struct job {
	struct job *next;
	struct json_object *id; /* the request's id, owned */
	pid_t pid;
	int fd_in, fd_status;
	char *in_data;
	size_t in_len, in_off;
	struct job_stream out, err;
	int start_errno; /* from the status pipe: chdir/exec failed */
	int start_step;  /* 0 chdir, 1 exec */
	double deadline, drain_until;
	int exited, wstatus, timed_out;
};

/* A forked helper (a `net` request) that writes one reply line and exits. */
struct worker {
	struct worker *next;
	struct json_object *id;
	pid_t pid;
	int fd;
	struct pv_buf buf;
};

struct agent {
	int fd;           /* transport, -1 while a port is not open */
	const char *port; /* virtio-serial path, or NULL with --fd */
	const char *etc;  /* where hosts and resolv.conf go */
	int pid1;
	int sigfd;
	int link_up;      /* something was read or written since the last hang-up */
	double probe_at;  /* while the host is away: when to look at the port again */
	struct pv_buf in; /* partial request line */
	int in_skip;      /* discarding an over-long line up to its newline */
	struct pv_buf out;
	size_t out_off;
	struct job *jobs;
	struct worker *net_worker;           /* at most one network change at a time */
	struct json_object **net_queue;      /* waiting `net` requests, owned */
	size_t net_queued;
};

/* util.c */
double pv_now(void);
int pv_buf_add(struct pv_buf *b, const void *data, size_t len);
void pv_buf_free(struct pv_buf *b);
int pv_set_nonblock(int fd);
/* A JSON string of `len` bytes where every byte that does not start valid
 * UTF-8 becomes U+FFFD, so the reply line stays valid JSON. */
struct json_object *pv_json_string_utf8(const char *s, size_t len);
void pv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* main.c: queue one reply or event line for the transport. */
void agent_send(struct agent *ag, struct json_object *msg);
void agent_reply_ok(struct agent *ag, struct json_object *id, struct json_object *result);
void agent_reply_err(struct agent *ag, struct json_object *id, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same reply objects, for a forked helper that writes them itself. */
struct json_object *agent_msg_ok(struct json_object *id, struct json_object *result);
struct json_object *agent_msg_err(struct json_object *id, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* exec.c */
void exec_start(struct agent *ag, struct json_object *id, struct json_object *req);
void exec_child_exited(struct agent *ag, pid_t pid, int wstatus);
double exec_next_deadline(struct agent *ag);
void exec_tick(struct agent *ag);
/* The exec descriptors to poll: at most exec_count_fds(), filled by
 * exec_fill(), handed back with their revents to exec_events(). */
struct pollfd;
size_t exec_count_fds(struct agent *ag);
size_t exec_fill(struct agent *ag, struct pollfd *p);
void exec_events(struct agent *ag, struct pollfd *p, size_t n);

/* files.c */
void files_read(struct agent *ag, struct json_object *id, struct json_object *req);
void files_write(struct agent *ag, struct json_object *id, struct json_object *req);
/* Write `len` bytes to dir/name through a temporary file and rename(2). */
int files_replace(const char *dir, const char *name, const char *data, size_t len);

/* net.c: runs in a forked helper; returns the reply (id filled by caller). */
struct json_object *net_apply(struct json_object *id, struct json_object *req, const char *etc);

#endif
