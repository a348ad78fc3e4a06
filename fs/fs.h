/* The lab filesystem: paths, the file table and the handlers behind it.
 * fs/ renders and parses the graph; it keeps no state beyond open files. */
#ifndef PV_FS_H
#define PV_FS_H

#define FUSE_USE_VERSION 314
#include <fuse.h>
#include <stdbool.h>
#include <sys/types.h>

#include "netcore/lab.h"
#include "netcore/profile.h"

struct pv_vms;

struct pv_fs {
	struct pv_lab *lab;
	struct fuse *fuse;
	gid_t gid;      /* group granted access (--group), or 0 */
	bool grouped;
	struct pv_profiles profiles;
	struct pv_vms *vms; /* running VMs (fs/vm.c) */
};

enum pv_level {
	PV_ROOT,       /* /                 */
	PV_LABFILE,    /* /ctl              */
	PV_BRIDGE,     /* /lan              */
	PV_BRIDGEFILE, /* /lan/attach       */
	PV_NODE,       /* /a                */
	PV_NODEFILE,   /* /a/run            */
	PV_NIC,        /* /a/lan            */
	PV_NICFILE,    /* /a/lan/counters   */
};

struct pv_file;

struct pv_path {
	enum pv_level level;
	pv_name bridge, node;
	const struct pv_file *file;
	const char *text; /* the path as the kernel gave it */
};

/* A buffer a handler fills (open_memstream-friendly). */
struct pv_buf {
	char *data;
	size_t len;
};

typedef int (*pv_render_fn)(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out);
/* `data` is a private NUL-terminated copy of one write(2). Transaction files
 * put their reply in `reply`. */
typedef int (*pv_write_fn)(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			   struct pv_buf *reply, struct pv_err *err);

struct pv_file {
	const char *name;
	pv_render_fn render; /* NULL: write-only */
	pv_write_fn write;   /* NULL: read-only */
	bool transaction;    /* write a request, read the reply on the same fd */
};

extern const struct pv_file pv_lab_files[];
extern const struct pv_file pv_bridge_files[];
extern const struct pv_file pv_node_files[];
extern const struct pv_file pv_nic_files[];

/* Resolve a path against the graph (takes the lab lock). 0 or -ENOENT. */
int pv_path_resolve(struct pv_fs *fs, const char *path, struct pv_path *p);

/* The FUSE operations. */
extern const struct fuse_operations pv_fs_ops;

/* Request the daemon to end after the current request (ctl "teardown"). */
void pv_fs_request_exit(struct pv_fs *fs);

/* Helpers shared by the handlers. */
int pv_buf_printf(struct pv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pv_buf_free(struct pv_buf *b);

#endif
