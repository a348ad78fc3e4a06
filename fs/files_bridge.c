/* Bridge files: ifname, members, attach, detach, partition, isolated;
 * impairments: latency_ms ... bandwidth_bps, impair, reset. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "netcore/impair.h"
#include "netcore/parse.h"

#define NAMES_MAX 4096

/* Read the graph under the lock with a callback. */
#define WITH_BRIDGE(fs, p, b, body)                                             \
	do {                                                                    \
		pthread_mutex_lock(&(fs)->lab->lock);                           \
		const struct pv_graph *g_ = (fs)->lab->g;                       \
		const struct pv_bridge *b = pv_graph_bridge(g_, (p)->bridge);   \
		int rc_ = b ? 0 : -ENOENT;                                      \
		if (b) {                                                        \
			body;                                                   \
		}                                                               \
		pthread_mutex_unlock(&(fs)->lab->lock);                         \
		return rc_;                                                     \
	} while (0)

static int ifname_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	char ifname[16];
	WITH_BRIDGE(fs, p, b, {
		pv_bridge_ifname(b, ifname);
		rc_ = pv_buf_printf(out, "%s\n", ifname);
	});
}

static int members_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	WITH_BRIDGE(fs, p, b, {
		for (size_t i = 0; i < b->n_members && !rc_; i++)
			rc_ = pv_buf_printf(out, "%s\n",
					    pv_graph_node_by_id(g_, b->members[i].node_id)->name);
	});
}

static int partition_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	WITH_BRIDGE(fs, p, b, {
		for (size_t i = 0; i < b->n_parts && !rc_; i++)
			rc_ = pv_buf_printf(out, "%s %s%s\n", b->parts[i].from,
					    b->parts[i].directional ? "-> " : "", b->parts[i].to);
	});
}

static int isolated_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	WITH_BRIDGE(fs, p, b, {
		for (size_t i = 0; i < b->n_members && !rc_; i++)
			if (b->members[i].isolated)
				rc_ = pv_buf_printf(
					out, "%s\n",
					pv_graph_node_by_id(g_, b->members[i].node_id)->name);
	});
}

struct names_arg {
	const char *bridge;
	char **names;
	size_t n;
	bool attach;
};

static int mutate_membership(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct names_arg *a = arg;
	return a->attach ? pv_graph_attach(g, a->bridge, a->names, a->n, err)
			 : pv_graph_detach(g, a->bridge, a->names, a->n, err);
}

static int membership_write(struct pv_fs *fs, const struct pv_path *p, char *data, bool attach,
			    struct pv_err *err)
{
	char **names = calloc(NAMES_MAX, sizeof(*names));
	if (!names)
		return pv_err_set(err, ENOMEM, "out of memory");
	struct names_arg a = {.bridge = p->bridge, .names = names, .attach = attach};
	int rc = pv_split_words(data, names, NAMES_MAX, &a.n, err);
	if (!rc)
		rc = pv_lab_change(fs->lab, mutate_membership, &a, err);
	for (size_t i = 0; !rc && !attach && i < a.n; i++)
		pv_fs_forget(fs, "/%s/%s", names[i], p->bridge);
	free(names);
	return rc;
}

static int attach_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	return membership_write(fs, p, data, true, err);
}

static int detach_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	return membership_write(fs, p, data, false, err);
}

struct lines_arg {
	const char *bridge;
	char **lines;
	size_t n;
};

/* Every line is applied to the same graph copy: a bad line anywhere leaves
 * the partitions as they were. */
static int mutate_partition(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct lines_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		struct pv_part_op op;
		int rc = pv_parse_partition(a->lines[i], &op, err);
		if (!rc) {
			if (op.kind == PV_PART_ALL)
				rc = pv_graph_partition_all(g, a->bridge, err);
			else if (op.kind == PV_PART_NONE)
				rc = pv_graph_partition_none(g, a->bridge, err);
			else
				rc = pv_graph_partition(g, a->bridge, op.a, op.b, op.directional,
							!op.remove, err);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int mutate_isolated(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct lines_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		char *name;
		bool remove;
		int rc = pv_parse_toggle(a->lines[i], &name, &remove, err);
		if (!rc)
			rc = pv_graph_isolate(g, a->bridge, name, !remove, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int lines_write(struct pv_fs *fs, const struct pv_path *p, char *data, pv_mutate_fn fn,
		       const char *usage, struct pv_err *err)
{
	char **lines = calloc(NAMES_MAX, sizeof(*lines));
	if (!lines)
		return pv_err_set(err, ENOMEM, "out of memory");
	struct lines_arg a = {.bridge = p->bridge, .lines = lines};
	int rc = pv_split_lines(data, lines, NAMES_MAX, &a.n);
	if (rc || a.n == 0)
		rc = pv_err_set(err, EINVAL, "%s", usage);
	else
		rc = pv_lab_change(fs->lab, fn, &a, err);
	free(lines);
	return rc;
}

static int partition_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			   struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	return lines_write(fs, p, data, mutate_partition,
			   "write `a b`, `a -> b`, `-a b`, `-a -> b`, `all` or `none`, one a line",
			   err);
}

static int isolated_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			  struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	return lines_write(fs, p, data, mutate_isolated,
			   "write a node name to isolate it, or -NAME to lift it", err);
}

/* ---- impairments (docs/impairments.md) ---- */

struct impair_arg {
	const struct pv_lab *lab;
	const char *bridge;
	struct pv_impair_change change;  /* a whole-bridge file */
	struct pv_impair_line *lines;    /* the impair file */
	size_t n;
};

/* Refused up front, before the graph changes: the kernel lacks the qdisc. */
static int netem_check(const struct pv_lab *lab, const struct pv_impair_change *c,
		       struct pv_err *err)
{
	if (lab->feat_probed && !lab->feat.netem && pv_impair_change_needs_netem(c))
		return pv_err_set(err, EOPNOTSUPP,
				  "this kernel has no sch_netem: latency, jitter, loss, duplication, corruption and reordering need it (`features` says netem no); bandwidth_bps works without it");
	return 0;
}

static int mutate_impair_value(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct impair_arg *a = arg;
	int rc = netem_check(a->lab, &a->change, err);
	return rc ? rc : pv_graph_impair_bridge(g, a->bridge, &a->change, err);
}

static int impair_key_of(const struct pv_path *p)
{
	return pv_impair_key_find(p->file->name);
}

static int impair_value_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	int key = impair_key_of(p);
	char v[32];
	WITH_BRIDGE(fs, p, b, {
		pv_impair_format_value(key, b->impair.v[key], v, sizeof(v));
		rc_ = pv_buf_printf(out, "%s\n", v);
	});
}

static int impair_value_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			      struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	int key = impair_key_of(p);
	struct impair_arg a = {.lab = fs->lab, .bridge = p->bridge};
	int rc = pv_impair_parse_value(key, data, &a.change.val.v[key], err);
	if (rc)
		return rc;
	a.change.mask = 1u << key;
	return pv_lab_change(fs->lab, mutate_impair_value, &a, err);
}

static int impair_render(struct pv_fs *fs, const struct pv_path *p, struct pv_buf *out)
{
	FILE *f = open_memstream(&out->data, &out->len);
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&fs->lab->lock);
	const struct pv_bridge *b = pv_graph_bridge(fs->lab->g, p->bridge);
	for (size_t i = 0; b && i < b->n_pairs; i++)
		pv_impair_render_pair(f, &b->pairs[i]);
	pthread_mutex_unlock(&fs->lab->lock);
	fclose(f);
	return b ? 0 : -ENOENT;
}

/* Every line goes to the same graph copy: a bad line anywhere leaves every
 * impairment as it was. */
static int mutate_impair_lines(struct pv_graph *g, void *arg, struct pv_err *err)
{
	struct impair_arg *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		const struct pv_impair_line *l = &a->lines[i];
		int rc;
		if (l->clear)
			rc = pv_graph_impair_clear(g, a->bridge, l->from, l->to, err);
		else if (!(rc = netem_check(a->lab, &l->change, err)))
			rc = pv_graph_impair_pair(g, a->bridge, l->from, l->to, &l->change, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int impair_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
			struct pv_buf *reply, struct pv_err *err)
{
	(void)len;
	(void)reply;
	char **lines = calloc(NAMES_MAX, sizeof(*lines));
	struct impair_arg a = {.lab = fs->lab, .bridge = p->bridge};
	int rc = lines ? 0 : pv_err_set(err, ENOMEM, "out of memory");
	size_t n = 0;
	if (!rc && (pv_split_lines(data, lines, NAMES_MAX, &n) || n == 0))
		rc = pv_err_set(err, EINVAL, "write `a -> b key=value ...` or `a -> b clear`, one pair a line");
	if (!rc && !(a.lines = calloc(n, sizeof(*a.lines))))
		rc = pv_err_set(err, ENOMEM, "out of memory");
	/* parse the whole write before anything changes */
	for (size_t i = 0; !rc && i < n; i++)
		rc = pv_impair_parse_line(lines[i], &a.lines[a.n++], err);
	if (!rc)
		rc = pv_lab_change(fs->lab, mutate_impair_lines, &a, err);
	free(a.lines);
	free(lines);
	return rc;
}

static int mutate_bridge_reset(struct pv_graph *g, void *arg, struct pv_err *err)
{
	return pv_graph_bridge_reset(g, arg, err);
}

static int reset_write(struct pv_fs *fs, const struct pv_path *p, char *data, size_t len,
		       struct pv_buf *reply, struct pv_err *err)
{
	(void)data;
	(void)len;
	(void)reply;
	return pv_lab_change(fs->lab, mutate_bridge_reset, (void *)p->bridge, err);
}

const struct pv_file pv_bridge_files[] = {
	{.name = "ifname", .render = ifname_render},
	{.name = "members", .render = members_render},
	{.name = "attach", .write = attach_write},
	{.name = "detach", .write = detach_write},
	{.name = "partition", .render = partition_render, .write = partition_write},
	{.name = "isolated", .render = isolated_render, .write = isolated_write},
	{.name = "latency_ms", .render = impair_value_render, .write = impair_value_write},
	{.name = "jitter_ms", .render = impair_value_render, .write = impair_value_write},
	{.name = "drop_pct", .render = impair_value_render, .write = impair_value_write},
	{.name = "drop_corr_pct", .render = impair_value_render, .write = impair_value_write},
	{.name = "duplicate_pct", .render = impair_value_render, .write = impair_value_write},
	{.name = "corrupt_pct", .render = impair_value_render, .write = impair_value_write},
	{.name = "reorder_pct", .render = impair_value_render, .write = impair_value_write},
	{.name = "bandwidth_bps", .render = impair_value_render, .write = impair_value_write},
	{.name = "impair", .render = impair_render, .write = impair_write},
	{.name = "reset", .write = reset_write},
	{0},
};
