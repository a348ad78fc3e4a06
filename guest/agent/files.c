/* read_file / write_file. Done inline: local files (tmpfs, 9p) answer fast
 * enough that a fork would cost more than it saves. */
#include "guest/agent/agent.h"
#include "guest/agent/base64.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *req_path(struct json_object *req)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, "path", &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	const char *p = json_object_get_string(v);
	/* relative paths would depend on the agent's cwd: refuse them */
	if (p[0] != '/' || strlen(p) != (size_t)json_object_get_string_len(v))
		return NULL;
	return p;
}

/* Read the whole file; sizes of /proc and /sys files lie, so read to EOF. */
static int slurp(int fd, struct pv_buf *b)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (b->len + (size_t)n > PV_AGENT_MAX_FILE)
			return -EFBIG;
		if (pv_buf_add(b, chunk, (size_t)n))
			return -ENOMEM;
	}
}

void files_read(struct agent *ag, struct json_object *id, struct json_object *req)
{
	const char *path = req_path(req);
	if (!path) {
		agent_reply_err(ag, id, EINVAL, "read_file: \"path\" must be an absolute path");
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		agent_reply_err(ag, id, errno, "read_file %s: %s", path, strerror(errno));
		return;
	}
	struct pv_buf b = {0};
	int rc = slurp(fd, &b);
	close(fd);
	char *enc = rc ? NULL : pv_b64_encode((const unsigned char *)(b.data ? b.data : ""), b.len);
	if (!rc && !enc)
		rc = -ENOMEM;
	if (rc) {
		agent_reply_err(ag, id, -rc, "read_file %s: %s%s", path, strerror(-rc),
				rc == -EFBIG ? " (more than 64 MiB: read it in pieces with exec)" : "");
	} else {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "data", json_object_new_string(enc));
		json_object_object_add(r, "size", json_object_new_int64((int64_t)b.len));
		agent_reply_ok(ag, id, r);
	}
	free(enc);
	pv_buf_free(&b);
}

static int mkdir_parents(const char *path)
{
	char tmp[PATH_MAX];
	if (strlen(path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	strcpy(tmp, path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

struct wreq {
	const char *path;
	unsigned char *data;
	size_t len;
	int mode, has_mode, append, parents;
};

static int parse_write(struct json_object *req, struct wreq *w, const char **bad)
{
	struct json_object *v;
	if (!(w->path = req_path(req)))
		return *bad = "\"path\" must be an absolute path", -EINVAL;
	if (!json_object_object_get_ex(req, "data", &v) || !json_object_is_type(v, json_type_string))
		return *bad = "\"data\" must be a base64 string", -EINVAL;
	size_t n = (size_t)json_object_get_string_len(v);
	if (n / 4 * 3 > PV_AGENT_MAX_FILE)
		return *bad = "more than 64 MiB of data", -EFBIG;
	int rc = pv_b64_decode(json_object_get_string(v), n, &w->data, &w->len);
	if (rc)
		return *bad = "\"data\" is not valid base64", rc;
	w->mode = 0644;
	if (json_object_object_get_ex(req, "mode", &v) && v) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int(v) < 0 ||
		    json_object_get_int(v) > 07777)
			return *bad = "\"mode\" must be a number from 0 to 4095 (0644 is 420)", -EINVAL;
		w->mode = json_object_get_int(v);
		w->has_mode = 1;
	}
	w->append = json_object_object_get_ex(req, "append", &v) && json_object_get_boolean(v);
	w->parents = json_object_object_get_ex(req, "parents", &v) && json_object_get_boolean(v);
	return 0;
}

/* Written in place, not through a rename: the target may be a /proc or
 * /sys file (ip_forward), which only an in-place write changes. */
void files_write(struct agent *ag, struct json_object *id, struct json_object *req)
{
	struct wreq w = {0};
	const char *bad = NULL;
	int rc = parse_write(req, &w, &bad);
	if (rc) {
		agent_reply_err(ag, id, -rc, "write_file: %s", bad);
		free(w.data);
		return;
	}
	if (w.parents && (rc = mkdir_parents(w.path)) < 0) {
		agent_reply_err(ag, id, -rc, "write_file %s: making parent directories: %s", w.path,
				strerror(-rc));
		free(w.data);
		return;
	}
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | (w.append ? O_APPEND : O_TRUNC);
	int fd = open(w.path, flags, w.mode);
	rc = fd < 0 ? -errno : write_all(fd, (const char *)w.data, w.len);
	struct stat st;
	/* an existing file keeps its mode unless one was asked for */
	if (!rc && w.has_mode && !fstat(fd, &st) && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) != (mode_t)w.mode && fchmod(fd, (mode_t)w.mode) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = -errno;
	if (rc) {
		agent_reply_err(ag, id, -rc, "write_file %s: %s", w.path, strerror(-rc));
	} else {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "size", json_object_new_int64((int64_t)w.len));
		agent_reply_ok(ag, id, r);
	}
	free(w.data);
}

int files_replace(const char *dir, const char *name, const char *data, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.pv%d", dir, name, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = write_all(fd, data, len);
	if (!rc && fsync(fd) < 0 && errno != EINVAL)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}
