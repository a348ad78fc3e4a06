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
 * Returns 0 with *res filled, or -errno when the command could not start. */
int pv_nsexec_run(const struct pv_nsexec_target *t, const struct pv_run_req *req,
		  struct pv_run_result *res, struct pv_err *err);

#endif
