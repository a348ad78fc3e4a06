/* Run a command inside a netns node: its network namespace, a private mount
 * namespace where the node's hosts file is bind-mounted on /etc/hosts, and a
 * UTS namespace named after the node. */
#ifndef PV_NSEXEC_H
#define PV_NSEXEC_H

#include "netcore/err.h"
#include "netcore/runreq.h"

struct pv_nsexec_target {
	const char *netns_path; /* "/run/netns/pv-lab.a" */
	const char *hosts_path; /* file bind-mounted on /etc/hosts, or NULL */
	const char *hostname;   /* or NULL */
};

/* Runs to completion (or timeout, then SIGKILL of the whole process group).
 * Returns 0 with *res filled, or -errno when the command could not start.
 * Result codes: exited -> its exit status; signalled -> 128+signal; timed_out
 * -> exit_code 137 (128+SIGKILL, what a shell reports; -1 would be awkward in
 * JSON) and signal 9. A program that cannot be executed gives exit_code 127
 * (126 when found but not executable) and a message on stderr, like a shell.
 * Background children of the command stay in the node (their output is not
 * waited for: reading stops 50 ms after the main process exits).
 * The caller must not reap children with waitpid(-1) or ignore SIGCHLD. */
int pv_nsexec_run(const struct pv_nsexec_target *t, const struct pv_run_req *req,
		  struct pv_run_result *res, struct pv_err *err);

#endif
