/* Crash cleanup: what a SIGKILLed daemon leaves is a stale FUSE mount, the
 * lab namespace (with its bridges, ports and nft table inside), node
 * namespaces, per-node files and the journal. All of it is found from the
 * journal, and by name when the journal is gone too. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <json-c/json.h>

#include "netcore/lab.h"
#include "netcore/netns.h"

/* A live provium-labd: not us, and not a zombie waiting to be reaped (a
 * killed daemon's parent may be slow to reap it). */
static bool daemon_alive(int pid)
{
	char path[64], stat[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool read = fgets(stat, sizeof(stat), f) != NULL;
	fclose(f);
	const char *comm_end = strrchr(stat, ')');
	if (!read || !comm_end || comm_end[1] != ' ')
		return false;
	char state = comm_end[2];
	return strstr(stat, "(provium-labd)") && state != 'Z' && state != 'X' && pid != getpid();
}

static void remove_dir_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

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

static int gc_one(const char *root, const char *lab, struct pv_err *err)
{
	char journal[PATH_MAX], dir[PATH_MAX], mnt[PATH_MAX];
	pv_journal_path(root, lab, journal, sizeof(journal));
	snprintf(mnt, sizeof(mnt), "%s/%s", root, lab);
	json_object *j = json_object_from_file(journal);
	if (j) {
		json_object *pid, *m;
		if (json_object_object_get_ex(j, "pid", &pid) && daemon_alive(json_object_get_int(pid))) {
			int p = json_object_get_int(pid);
			json_object_put(j);
			return pv_err_set(err, EBUSY, "lab %s is running (provium-labd pid %d): unmount %s to stop it",
					  lab, p, mnt);
		}
		if (json_object_object_get_ex(j, "mount", &m))
			snprintf(mnt, sizeof(mnt), "%s", json_object_get_string(m));
		json_object_put(j);
	}
	/* a dead daemon's mount answers ENOTCONN; detach it */
	if (umount2(mnt, MNT_DETACH) == 0 || errno == EINVAL || errno == ENOENT)
		rmdir(mnt);
	remove_namespaces(lab);
	snprintf(dir, sizeof(dir), "%s/.state/%s", root, lab);
	remove_dir_files(dir);
	unlink(journal);
	return 0;
}

int pv_gc(const char *root, const char *name, struct pv_err *err)
{
	if (name) {
		if (!pv_name_valid(name))
			return pv_err_set(err, EINVAL, "invalid lab name `%.40s`", name);
		return gc_one(root, name, err);
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/.state", root);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int rc = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".json"))
			continue;
		char lab[64];
		snprintf(lab, sizeof(lab), "%.*s", (int)(n - 5), e->d_name);
		struct pv_err one;
		if (gc_one(root, lab, &one) && one.code != EBUSY && !rc)
			rc = pv_err_set(err, one.code, "%s", one.msg);
	}
	closedir(d);
	return rc;
}
