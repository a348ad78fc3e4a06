/* Crash cleanup: what a SIGKILLed daemon leaves is a stale FUSE mount, the
 * lab namespace (with its bridges, ports and nft table inside), node
 * namespaces, per-node files and the journal. All of it is found from the
 * journal, and by name when the journal is gone too. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <json-c/json.h>

#include "netcore/fsutil.h"
#include "netcore/lab.h"
#include "netcore/netns.h"

/* Delete pv-<lab> and every pv-<lab>.<node>. */
static void remove_namespaces(const char *lab)
{
	char main_ns[64], prefix[64];
	pv_lab_netns_name(lab, main_ns, sizeof(main_ns));
	snprintf(prefix, sizeof(prefix), "%s.", main_ns);
	DIR *d = opendir(PV_NETNS_DIR);
	if (d) {
		for (struct dirent *e; (e = readdir(d));)
			if (!strncmp(e->d_name, prefix, strlen(prefix)))
				pv_netns_delete(e->d_name);
		closedir(d);
	}
	pv_netns_delete(main_ns);
}

void pv_lab_lock_path(const char *root, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/.state/%s.lock", root, name);
}

int pv_lab_lock(const char *root, const char *name, struct pv_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/.state", root);
	mkdir(root, 0755);
	mkdir(dir, 0700);
	pv_lab_lock_path(root, name, path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return pv_err_set(err, errno, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return pv_err_set(err, EBUSY,
					  "lab %s is running or still tearing down: unmount %s/%s, or wait for it",
					  name, root, name);
		return pv_err_set(err, e, "cannot lock %s: %s", path, strerror(e));
	}
	return fd;
}

static int gc_one(const char *root, const char *lab)
{
	char journal[PATH_MAX], dir[PATH_MAX], mnt[PATH_MAX];
	pv_journal_path(root, lab, journal, sizeof(journal));
	snprintf(mnt, sizeof(mnt), "%s/%s", root, lab);
	/* the caller holds the lab's lock: no daemon of this lab is alive */
	json_object *j = json_object_from_file(journal);
	if (j) {
		json_object *m;
		if (json_object_object_get_ex(j, "mount", &m))
			snprintf(mnt, sizeof(mnt), "%s", json_object_get_string(m));
		json_object_put(j);
	}
	/* a dead daemon's mount answers ENOTCONN; detach it */
	if (umount2(mnt, MNT_DETACH) == 0 || errno == EINVAL || errno == ENOENT)
		rmdir(mnt);
	remove_namespaces(lab);
	snprintf(dir, sizeof(dir), "%s/.state/%s", root, lab);
	pv_rm_rf(dir);
	unlink(journal);
	snprintf(dir, sizeof(dir), "%s/.state/%s.log", root, lab);
	unlink(dir);
	return 0;
}

int pv_gc_locked(const char *root, const char *name, struct pv_err *err)
{
	(void)err;
	return gc_one(root, name);
}

int pv_gc(const char *root, const char *name, struct pv_err *err)
{
	if (name) {
		if (!pv_name_valid(name))
			return pv_err_set(err, EINVAL, "invalid lab name `%.40s`", name);
		int lock = pv_lab_lock(root, name, err);
		if (lock < 0)
			return lock;
		int rc = gc_one(root, name);
		char path[PATH_MAX];
		pv_lab_lock_path(root, name, path, sizeof(path));
		unlink(path);
		close(lock);
		return rc;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/.state", root);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int rc = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (n < 6 || (strcmp(e->d_name + n - 5, ".json") && strcmp(e->d_name + n - 4, ".log")))
			continue;
		char lab[64];
		snprintf(lab, sizeof(lab), "%.*s", (int)(n - (e->d_name[n - 1] == 'n' ? 5 : 4)),
			 e->d_name);
		struct pv_err one;
		if (pv_gc(root, lab, &one) && one.code != EBUSY && !rc)
			rc = pv_err_set(err, one.code, "%s", one.msg);
	}
	closedir(d);
	return rc;
}
