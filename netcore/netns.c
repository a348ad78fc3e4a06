#include "netcore/netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SELF_NET "/proc/thread-self/ns/net"

/* The name becomes a path component under /run/netns: refuse anything that
 * could escape it or that iproute2 would not accept either. */
static int netns_path(const char *name, char *buf, size_t len)
{
	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s", PV_NETNS_DIR, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Like `ip netns add`: the directory must be a shared mount so that names
 * made here show up in other mount namespaces (and unmounts propagate).
 * Making it shared fails with EINVAL when it is not a mount point yet; then
 * it becomes a bind mount of itself and we try again. */
static int netns_dir_prepare(void)
{
	if (mkdir(PV_NETNS_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	for (int tries = 0; tries < 2; tries++) {
		if (mount("", PV_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
			return 0;
		if (errno != EINVAL || tries)
			return -errno;
		if (mount(PV_NETNS_DIR, PV_NETNS_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
			return -errno;
	}
	return -EINVAL;
}

/* A socket made inside the new namespace sees its `lo`; ioctl is enough. */
static int lo_up_here(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		rc = -errno;
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

/* Runs with the calling thread in a fresh namespace; the caller switches back. */
static int netns_pin_here(const char *path)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	if (mount(SELF_NET, path, "none", MS_BIND, NULL) < 0)
		return -errno;
	return lo_up_here();
}

int pv_netns_create(const char *name)
{
	char path[PATH_MAX];
	int rc = netns_path(name, path, sizeof(path));

	if (rc < 0)
		return rc;
	rc = netns_dir_prepare();
	if (rc < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	close(fd);

	int saved = open(SELF_NET, O_RDONLY | O_CLOEXEC);
	if (saved < 0) {
		rc = -errno;
		unlink(path);
		return rc;
	}
	rc = netns_pin_here(path);
	/* Back to where we were whatever happened; if even that fails the
	 * thread is lost to the caller, so say so loudly with the errno. */
	if (setns(saved, CLONE_NEWNET) < 0 && rc == 0)
		rc = -errno;
	close(saved);
	if (rc < 0) {
		umount2(path, MNT_DETACH);
		unlink(path);
	}
	return rc;
}

int pv_netns_open(const char *name)
{
	char path[PATH_MAX];
	int rc = netns_path(name, path, sizeof(path));

	if (rc < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

bool pv_netns_exists(const char *name)
{
	char path[PATH_MAX];

	return netns_path(name, path, sizeof(path)) == 0 && access(path, F_OK) == 0;
}

static bool same_ns(const char *nspath, const struct stat *want)
{
	struct stat st;

	return stat(nspath, &st) == 0 && st.st_dev == want->st_dev && st.st_ino == want->st_ino;
}

/* True if any thread of process `pid` is in the namespace: a thread that
 * called setns() does not show in /proc/PID/ns/net, only in its task entry. */
static bool pid_in_ns(const char *pid, const struct stat *want)
{
	char path[PATH_MAX];
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%s/ns/net", pid);
	if (same_ns(path, want))
		return true;
	snprintf(path, sizeof(path), "/proc/%s/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return false;
	for (struct dirent *e; !found && (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task/%s/ns/net", pid, e->d_name);
		found = same_ns(path, want);
	}
	closedir(d);
	return found;
}

/* Kills what is inside; returns how many processes were still found there.
 * Our own process is never a victim: a thread of ours may be visiting. */
static int kill_members(const struct stat *want)
{
	DIR *d = opendir("/proc");
	int found = 0;
	pid_t self = getpid();

	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
		if (pid == self || !pid_in_ns(e->d_name, want))
			continue;
		found++;
		kill(pid, SIGKILL);
	}
	closedir(d);
	return found;
}

int pv_netns_delete(const char *name)
{
	char path[PATH_MAX];
	struct stat want;
	int rc = netns_path(name, path, sizeof(path));

	if (rc < 0)
		return rc;
	if (stat(path, &want) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* A dead process loses its namespace links at once (even as a zombie),
	 * so rescanning tells when they are gone; 2 s covers a busy host. */
	for (int i = 0; i < 200; i++) {
		int n = kill_members(&want);
		if (n <= 0)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int pv_netns_enter(int fd, int *saved)
{
	int old = open(SELF_NET, O_RDONLY | O_CLOEXEC);

	if (old < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0) {
		int rc = -errno;
		close(old);
		return rc;
	}
	*saved = old;
	return 0;
}

int pv_netns_leave(int saved)
{
	int rc = setns(saved, CLONE_NEWNET) < 0 ? -errno : 0;

	close(saved);
	return rc;
}
