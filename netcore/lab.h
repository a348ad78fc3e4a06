/* One lab: its graph, the kernel state the reconciler keeps in step with it,
 * its namespace, its error log and its journal. Every entry point takes the
 * lab lock: the graph has one writer at a time. */
#ifndef PV_LAB_H
#define PV_LAB_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include "netcore/err.h"
#include "netcore/features.h"
#include "netcore/graph.h"
#include "netcore/reconcile.h"

#define PV_ERRORS_KEEP 64

struct pv_lab {
	pv_name name;
	char root[PATH_MAX / 2];      /* $PROVIUM_ROOT */
	char mountpoint[PATH_MAX];    /* root/name */
	char state_dir[PATH_MAX];     /* root/.state */
	char node_dir[PATH_MAX];      /* root/.state/name: per-node files */
	char journal[PATH_MAX];       /* root/.state/name.json */
	char netns[64];               /* pv-<name> */
	pthread_mutex_t lock;
	struct pv_graph *g;
	struct pv_kernel k;
	char *errors[PV_ERRORS_KEEP]; /* ring of one-line records */
	unsigned n_errors;
	char *journal_text;           /* last written, to skip identical writes */
	char features[1024];
	struct pv_features feat;      /* qdisc kinds, probed at open */
	bool feat_probed;             /* false: the probe failed, writes are not pre-checked */
	int host_nsfd;                /* the host's network namespace */
	/* called after every committed change, without the lock (VM agents
	 * learn their new NICs and hosts this way) */
	void (*after_change)(void *ctx);
	void *after_ctx;
};

/* Create the lab's namespace and move the calling thread into it (threads
 * it starts later inherit it), open the kernel back-ends, write the journal.
 * `root` is $PROVIUM_ROOT. */
int pv_lab_open(const char *name, const char *root, struct pv_lab **out, struct pv_err *err);

/* Reconcile against an empty graph, delete the namespace and the journal. */
void pv_lab_close(struct pv_lab *lab);

/* Apply `mutate` to a copy of the graph and reconcile; on any failure the
 * graph and the kernel stay as they were. Takes the lock. */
typedef int (*pv_mutate_fn)(struct pv_graph *g, void *arg, struct pv_err *err);
int pv_lab_change(struct pv_lab *lab, pv_mutate_fn mutate, void *arg, struct pv_err *err);

/* Same, for callers that already hold the lock. */
int pv_lab_change_locked(struct pv_lab *lab, pv_mutate_fn mutate, void *arg, struct pv_err *err);

/* Append "TIME PATH: INPUT: MESSAGE" to the errors ring. */
void pv_lab_log_error(struct pv_lab *lab, const char *path, const char *input, size_t input_len,
		      const struct pv_err *err);

/* Text of the errors file. Caller frees. Takes the lock. */
char *pv_lab_errors_text(struct pv_lab *lab);

/* Write the journal now if it changed. Called with the lock held. */
void pv_lab_journal(struct pv_lab *lab);

/* The journal path of lab `name` under `root`. */
void pv_journal_path(const char *root, const char *name, char *out, size_t len);

/* The lab's lock: held by its daemon from start to the end of its
 * teardown, and by --gc; a second holder gets -EBUSY. Returns the fd. */
int pv_lab_lock(const char *root, const char *name, struct pv_err *err);
void pv_lab_lock_path(const char *root, const char *name, char *out, size_t len);
int pv_gc_locked(const char *root, const char *name, struct pv_err *err);

/* Remove what a daemon of lab `name` (or of every lab, when NULL) left: its
 * mount, namespaces and node files. A lab whose daemon still runs is left
 * alone (-EBUSY for a named lab). */
int pv_gc(const char *root, const char *name, struct pv_err *err);

#endif
