/* The daemon's client of provium-agent (docs/agent-protocol.md).
 *
 * One connection per VM, shared by every thread of the daemon: calls may run
 * concurrently from any number of threads. A reader thread matches replies to
 * callers by id, so a slow exec never holds up a fast one. When the
 * connection dies (QEMU exited), every pending and later call fails with
 * -ECONNRESET at once. */
#ifndef PV_AGENT_CLIENT_H
#define PV_AGENT_CLIENT_H

#include <stddef.h>

#include "netcore/err.h"

struct pv_agent;

/* Extra time a call waits for the agent beyond the command's own timeout:
 * a TCG guest can be slow to fork and answer. */
#define PV_AGENT_SLACK_S 15.0
/* Calls without a command timeout (files, net, ping) wait this long. */
#define PV_AGENT_CALL_TIMEOUT_S 60.0

/* Connect to QEMU's chardev unix socket at `path`, retrying until it exists,
 * then ping until the agent answers ("agent ready"), all within timeout_ms.
 * -ETIMEDOUT when the agent did not answer in time. */
int pv_agent_connect(const char *path, int timeout_ms, struct pv_agent **a, struct pv_err *err);

/* Use an already connected stream descriptor (tests: a socketpair); takes
 * ownership of fd even on failure. Pings like pv_agent_connect. */
int pv_agent_from_fd(int fd, int timeout_ms, struct pv_agent **a, struct pv_err *err);

/* One ping; 0 when the agent answered within timeout_ms. */
int pv_agent_ping(struct pv_agent *a, int timeout_ms, struct pv_err *err);

/* Run a command. request_json is the run request (netcore/runreq.h): a JSON
 * object {"cmd"|"argv", "env", "cwd", "stdin", "timeout"}, or a plain shell
 * line. timeout_s > 0 sets the command's timeout (replacing the request's);
 * otherwise the request's own, or 60 s. On success *result_json is the result
 * object as JSON text (exit_code, status, signal, stdout, stderr), caller
 * frees. A command that could not start fails with its errno (ENOENT ...). */
int pv_agent_exec(struct pv_agent *a, const char *request_json, double timeout_s, char **result_json,
		  struct pv_err *err);

/* A NIC as the daemon assigned it. */
struct pv_agent_nic {
	const char *mac;    /* "52:54:00:12:34:56" */
	const char *ifname; /* name in the guest, or NULL to keep the kernel's */
	const char *cidr;   /* "10.77.1.2/24", "" for no address, NULL to leave as is */
	int up;
};

/* Bring the guest's NICs to this state (each found by MAC; a hot-plugged one
 * is waited for), then replace /etc/hosts with hosts_text (NULL: leave it).
 * gateway: default route ("" removes it, NULL leaves it). */
int pv_agent_net(struct pv_agent *a, const struct pv_agent_nic *nics, size_t n, const char *hosts_text,
		 const char *gateway, struct pv_err *err);

/* Whole-file read; *data is NUL-terminated for convenience, caller frees. */
int pv_agent_read_file(struct pv_agent *a, const char *path, char **data, size_t *len,
		       struct pv_err *err);
/* Create or replace a file with `mode` (e.g. 0644). */
int pv_agent_write_file(struct pv_agent *a, const char *path, const void *data, size_t len, int mode,
			struct pv_err *err);

/* Ask the guest to sync and power off. 0 once the agent acknowledged. */
int pv_agent_shutdown(struct pv_agent *a, struct pv_err *err);

/* Generic call: body_json is a JSON object of the op's fields (or NULL).
 * On success *result_json (if not NULL) is the "result" object as text, or
 * NULL when the reply had none; caller frees. */
int pv_agent_call(struct pv_agent *a, const char *op, const char *body_json, double timeout_s,
		  char **result_json, struct pv_err *err);

/* 1 while the connection is alive. */
int pv_agent_alive(struct pv_agent *a);

/* Close the connection and free. No call may be in progress. */
void pv_agent_close(struct pv_agent *a);

#endif
