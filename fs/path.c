#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"

static const struct pv_file *file_find(const struct pv_file *table, const char *name)
{
	for (const struct pv_file *f = table; f->name; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* Split "/a/b/c" into at most 3 components; -ENOENT for deeper paths. */
static int split(const char *path, char parts[3][PV_NAME_MAX + 16], size_t *n)
{
	*n = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (*n == 3 || len >= PV_NAME_MAX + 16)
			return -ENOENT;
		memcpy(parts[*n], p, len);
		parts[*n][len] = '\0';
		(*n)++;
		p = end;
	}
	return 0;
}

static int resolve_locked(const struct pv_graph *g, char parts[3][PV_NAME_MAX + 16], size_t n,
			  struct pv_path *p)
{
	if (n == 0) {
		p->level = PV_ROOT;
		return 0;
	}
	if ((p->file = file_find(pv_lab_files, parts[0]))) {
		p->level = PV_LABFILE;
		return n == 1 ? 0 : -ENOENT;
	}
	const struct pv_bridge *b = pv_graph_bridge(g, parts[0]);
	if (b) {
		snprintf(p->bridge, sizeof(p->bridge), "%s", b->name);
		if (n == 1) {
			p->level = PV_BRIDGE;
			return 0;
		}
		p->level = PV_BRIDGEFILE;
		p->file = file_find(pv_bridge_files, parts[1]);
		return p->file && n == 2 ? 0 : -ENOENT;
	}
	const struct pv_node *node = pv_graph_node(g, parts[0]);
	if (!node)
		return -ENOENT;
	snprintf(p->node, sizeof(p->node), "%s", node->name);
	if (n == 1) {
		p->level = PV_NODE;
		return 0;
	}
	if ((p->file = file_find(pv_node_files, parts[1]))) {
		p->level = PV_NODEFILE;
		return n == 2 ? 0 : -ENOENT;
	}
	b = pv_graph_bridge(g, parts[1]);
	if (!b || !pv_bridge_member(b, node->id))
		return -ENOENT;
	snprintf(p->bridge, sizeof(p->bridge), "%s", b->name);
	if (n == 2) {
		p->level = PV_NIC;
		return 0;
	}
	p->level = PV_NICFILE;
	p->file = file_find(pv_nic_files, parts[2]);
	return p->file ? 0 : -ENOENT;
}

int pv_path_resolve(struct pv_fs *fs, const char *path, struct pv_path *p)
{
	char parts[3][PV_NAME_MAX + 16];
	size_t n;
	memset(p, 0, sizeof(*p));
	p->text = path;
	if (split(path, parts, &n))
		return -ENOENT;
	pthread_mutex_lock(&fs->lab->lock);
	int rc = resolve_locked(fs->lab->g, parts, n, p);
	pthread_mutex_unlock(&fs->lab->lock);
	return rc;
}

int pv_buf_printf(struct pv_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	char *grown = realloc(b->data, b->len + (size_t)n + 1);
	if (!grown) {
		free(s);
		return -ENOMEM;
	}
	memcpy(grown + b->len, s, (size_t)n + 1);
	b->data = grown;
	b->len += (size_t)n;
	free(s);
	return 0;
}

void pv_buf_free(struct pv_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}
