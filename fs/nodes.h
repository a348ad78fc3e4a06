/* Node lifecycle as the files drive it: create, remove, boot, shutdown, run.
 * netns nodes are handled here directly; VM nodes go through fs/vm.c. */
#ifndef PV_NODES_H
#define PV_NODES_H

#include "fs/fs.h"

int pv_nodes_add_vm(struct pv_fs *fs, char **args, size_t n, struct pv_err *err);
int pv_nodes_rm(struct pv_fs *fs, const char *name, struct pv_err *err);
/* "boot" or "shutdown" every node */
int pv_nodes_all(struct pv_fs *fs, const char *cmd, struct pv_err *err);
/* "boot", "shutdown", "kill" one node */
int pv_nodes_ctl(struct pv_fs *fs, const char *node, const char *cmd, struct pv_err *err);
/* Run a request in a node; the reply is the JSON result. */
int pv_nodes_run(struct pv_fs *fs, const char *node, const char *request, size_t len,
		 struct pv_buf *reply, struct pv_err *err);

#endif
