/* A `run` request and its result, as written to and read from a node's `run`
 * file. The same JSON travels to the in-guest agent for VM nodes.
 *
 * Request: either a plain command line (run by /bin/sh -c), or a JSON object
 *   {"cmd": "shell line"} or {"argv": ["ping","-c1","b.lan"]},
 *   optional "env": {"K":"V"}, "cwd": "/tmp", "stdin": "text", "timeout": 5.0 (seconds)
 * Result: {"exit_code": N, "status": "exited"|"signalled"|"timed_out",
 *          "signal": N|null, "stdout": "...", "stderr": "..."} */
#ifndef PV_RUNREQ_H
#define PV_RUNREQ_H

#include <stddef.h>

#include "netcore/err.h"

#define PV_RUN_DEFAULT_TIMEOUT 60.0
#define PV_RUN_MAX_OUTPUT (16u << 20) /* per stream; the rest is cut */

struct pv_run_req {
	char *cmd;      /* shell line, or NULL when argv is set */
	char **argv;    /* NULL-terminated, or NULL */
	char **env;     /* "K=V", NULL-terminated, added to a minimal environment; or NULL */
	char *cwd;      /* or NULL for "/" */
	char *stdin_data;
	size_t stdin_len;
	double timeout; /* seconds, > 0 */
};

enum pv_run_status { PV_RUN_EXITED, PV_RUN_SIGNALLED, PV_RUN_TIMED_OUT };

struct pv_run_result {
	int exit_code;            /* exit status, or 128+signal when killed */
	enum pv_run_status status;
	int signal;               /* 0 when exited */
	char *out; size_t out_len;
	char *err; size_t err_len;
};

/* Parse `text` (len bytes, trailing newline allowed). */
int pv_run_req_parse(const char *text, size_t len, struct pv_run_req *req, struct pv_err *err);
void pv_run_req_free(struct pv_run_req *req);

/* Free a NULL-terminated array of strings and the strings (NULL is fine). */
void pv_strv_free(char **v);

/* Serialize a request as one JSON object (for the agent). Caller frees. */
char *pv_run_req_to_json(const struct pv_run_req *req);

/* Render a result as JSON text with a trailing newline. Caller frees. */
char *pv_run_result_to_json(const struct pv_run_result *r);
/* Parse a result JSON (from the agent). */
int pv_run_result_parse(const char *text, struct pv_run_result *r, struct pv_err *err);
void pv_run_result_free(struct pv_run_result *r);

#endif
