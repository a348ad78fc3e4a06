/* FUSE operations over the path model. Readable files are rendered once, at
 * open, into the open file's buffer; each write(2) is one request, applied
 * whole or not at all. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "netcore/parse.h"

struct open_file {
	struct pv_path path;
	char path_text[PATH_MAX];
	struct pv_buf buf; /* rendered content, or a transaction's reply */
	size_t cursor;     /* transaction files: how much of the reply was read */
};

static struct pv_fs *fs_of_context(void)
{
	return fuse_get_context()->private_data;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/* content changes under the kernel's feet: no page cache, and sizes
	 * of 0 in getattr still read whole */
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	cfg->intr = 1;
	return fs_of_context();
}

static mode_t file_mode(const struct pv_fs *fs, const struct pv_file *f)
{
	mode_t m = 0;
	if (f->render || f->transaction)
		m |= 0444;
	if (f->write)
		m |= 0222;
	/* owner root always; the group only with --group; others never */
	return S_IFREG | (m & (fs->grouped ? 0660 : 0600));
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	struct pv_fs *fs = fs_of_context();
	struct pv_path p;
	int rc = pv_path_resolve(fs, path, &p);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->st_uid = 0;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_atim = st->st_mtim = st->st_ctim = now;
	switch (p.level) {
	case PV_ROOT:
	case PV_BRIDGE:
	case PV_NODE:
	case PV_NIC:
		st->st_mode = S_IFDIR | (fs->grouped ? 0770 : 0700);
		st->st_nlink = 2;
		break;
	default:
		st->st_mode = file_mode(fs, p.file);
		break;
	}
	return 0;
}

static void fill_table(void *buf, fuse_fill_dir_t fill, const struct pv_file *t)
{
	for (; t->name; t++)
		fill(buf, t->name, NULL, 0, 0);
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	struct pv_fs *fs = fs_of_context();
	struct pv_path p;
	int rc = pv_path_resolve(fs, path, &p);
	if (rc)
		return rc;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	struct pv_lab *lab = fs->lab;
	pthread_mutex_lock(&lab->lock);
	const struct pv_graph *g = lab->g;
	switch (p.level) {
	case PV_ROOT:
		fill_table(buf, fill, pv_lab_files);
		for (size_t i = 0; i < g->n_bridges; i++)
			fill(buf, g->bridges[i].name, NULL, 0, 0);
		for (size_t i = 0; i < g->n_nodes; i++)
			fill(buf, g->nodes[i].name, NULL, 0, 0);
		break;
	case PV_BRIDGE:
		fill_table(buf, fill, pv_bridge_files);
		break;
	case PV_NODE: {
		fill_table(buf, fill, pv_node_files);
		const struct pv_node *n = pv_graph_node(g, p.node);
		for (size_t i = 0; n && i < g->n_bridges; i++)
			if (pv_bridge_member(&g->bridges[i], n->id))
				fill(buf, g->bridges[i].name, NULL, 0, 0);
		break;
	}
	case PV_NIC:
		fill_table(buf, fill, pv_nic_files);
		break;
	default:
		rc = -ENOTDIR;
	}
	pthread_mutex_unlock(&lab->lock);
	return rc;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	struct pv_fs *fs = fs_of_context();
	struct open_file *of = calloc(1, sizeof(*of));
	if (!of)
		return -ENOMEM;
	snprintf(of->path_text, sizeof(of->path_text), "%s", path);
	int rc = pv_path_resolve(fs, of->path_text, &of->path);
	if (!rc && !of->path.file)
		rc = -EISDIR;
	int acc = fi->flags & O_ACCMODE;
	if (!rc) {
		const struct pv_file *f = of->path.file;
		if (acc != O_WRONLY && !f->render && !f->transaction)
			rc = -EACCES;
		else if (acc != O_RDONLY && !f->write)
			rc = -EACCES;
		else if (acc != O_WRONLY && f->render && !f->transaction)
			rc = f->render(fs, &of->path, &of->buf);
	}
	if (rc) {
		pv_buf_free(&of->buf);
		free(of);
		return rc;
	}
	fi->direct_io = 1;
	fi->nonseekable = 0;
	fi->fh = (uintptr_t)of;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	if (of->path.file->transaction) {
		/* the request moved the file offset; the reply starts at 0 */
		off = (off_t)of->cursor;
		size_t left = of->buf.len > of->cursor ? of->buf.len - of->cursor : 0;
		of->cursor += left < size ? left : size;
	}
	if (off < 0 || (size_t)off >= of->buf.len)
		return 0;
	size_t n = of->buf.len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, of->buf.data + off, n);
	return (int)n;
}

static int op_write(const char *path, const char *data, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	(void)off; /* every write is a whole request, wherever the offset is */
	struct pv_fs *fs = fs_of_context();
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	const struct pv_file *f = of->path.file;
	struct pv_err err;
	pv_err_clear(&err);
	int rc;
	struct pv_buf reply = {0};
	if (size > PV_WRITE_MAX) {
		rc = pv_err_set(&err, EINVAL, "write of %zu bytes is over the 64 KiB limit: write less at once",
				size);
	} else {
		char *copy = malloc(size + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, size);
		copy[size] = '\0';
		if (strlen(copy) != size)
			rc = pv_err_set(&err, EINVAL, "the write holds a NUL byte: write text");
		else
			rc = f->write(fs, &of->path, copy, size, &reply, &err);
		free(copy);
	}
	if (rc) {
		if (!err.code)
			pv_err_set(&err, -rc, "%s", strerror(-rc));
		pv_lab_log_error(fs->lab, of->path.text, data, size > 200 ? 200 : size, &err);
		if (f->transaction && !reply.data)
			pv_buf_printf(&reply, "error: %s: %s\n", strerrorname_np(err.code) ?: "E?",
				      err.msg);
	}
	if (f->transaction) {
		pv_buf_free(&of->buf);
		of->buf = reply;
		of->cursor = 0;
		if (!of->buf.data && !rc)
			pv_buf_printf(&of->buf, "ok\n");
	} else {
		pv_buf_free(&reply);
	}
	return rc ? rc : (int)size;
}

/* `echo x > file` truncates first: accept it and change nothing. */
static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)size;
	(void)fi;
	struct pv_path p;
	return pv_path_resolve(fs_of_context(), path, &p);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	pv_buf_free(&of->buf);
	free(of);
	return 0;
}

static int mutate_add_bridge(struct pv_graph *g, void *arg, struct pv_err *err)
{
	return pv_graph_add_bridge(g, arg, err);
}

static int mutate_del_bridge(struct pv_graph *g, void *arg, struct pv_err *err)
{
	return pv_graph_del_bridge(g, arg, err);
}

static int dir_change(const char *path, pv_mutate_fn fn)
{
	struct pv_fs *fs = fs_of_context();
	struct pv_err err;
	pv_err_clear(&err);
	int rc;
	const char *name = path + 1;
	if (strchr(name, '/'))
		rc = pv_err_set(&err, EPERM, "bridges live at the lab's top: mkdir/rmdir %s/NAME",
				fs->lab->mountpoint);
	else
		rc = pv_lab_change(fs->lab, fn, (void *)name, &err);
	if (rc)
		pv_lab_log_error(fs->lab, path, "", 0, &err);
	return rc;
}

static int op_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	return dir_change(path, mutate_add_bridge);
}

static int op_rmdir(const char *path)
{
	return dir_change(path, mutate_del_bridge);
}

const struct fuse_operations pv_fs_ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.truncate = op_truncate,
	.release = op_release,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
};
