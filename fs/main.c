/* provium-labd: one daemon per lab, mounting its control filesystem.
 *
 *   provium-labd [-f] [--group NAME] [--root DIR] LAB
 *   provium-labd --gc [LAB]
 *
 * Without -f it returns once the mount is ready (or with the reason it is
 * not), leaving the daemon in the background. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fs/vm.h"
#include <fuse_lowlevel.h>

struct options {
	const char *lab, *root, *group;
	char config[PATH_MAX]; /* absolute, or "" for none */
	bool foreground, gc;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: provium-labd [-f] [--group NAME] [--root DIR] [--config FILE] LAB\n"
		   "       provium-labd --gc [LAB]\n"
		   "Mounts the control filesystem of lab LAB at $PROVIUM_ROOT/LAB (default root /run/provium).\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"foreground", no_argument, NULL, 'f'}, {"group", required_argument, NULL, 'g'},
		{"root", required_argument, NULL, 'r'}, {"gc", no_argument, NULL, 'G'},
		{"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{0},
	};
	memset(o, 0, sizeof(*o));
	o->root = getenv("PROVIUM_ROOT");
	if (!o->root || !*o->root)
		o->root = "/run/provium";
	for (int c; (c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1;) {
		switch (c) {
		case 'f': o->foreground = true; break;
		case 'g': o->group = optarg; break;
		case 'r': o->root = optarg; break;
		case 'G': o->gc = true; break;
		case 'c':
			if (!realpath(optarg, o->config)) {
				fprintf(stderr, "provium-labd: cannot read --config %s: %s\n", optarg,
					strerror(errno));
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	/* provium.toml in the directory the daemon starts in */
	if (!o->config[0] && access("provium.toml", R_OK) == 0 && !realpath("provium.toml", o->config))
		o->config[0] = '\0';
	if (optind < argc)
		o->lab = argv[optind++];
	if (optind != argc || (!o->lab && !o->gc)) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static struct fuse *mount_fs(struct pv_fs *fs, struct pv_err *err)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char opts[256];
	/* the kernel enforces the mode bits; only --group opens the mount to
	 * anyone but root */
	snprintf(opts, sizeof(opts), "default_permissions,fsname=provium:%s,subtype=provium-labd%s",
		 fs->lab->name, fs->grouped ? ",allow_other" : "");
	fuse_opt_add_arg(&args, "provium-labd");
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, opts);
	struct fuse *f = fuse_new(&args, &pv_fs_ops, sizeof(pv_fs_ops), fs);
	fuse_opt_free_args(&args);
	if (!f) {
		pv_err_set(err, EIO, "cannot set up FUSE (is /dev/fuse there?)");
		return NULL;
	}
	if (fuse_mount(f, fs->lab->mountpoint)) {
		fuse_destroy(f);
		pv_err_set(err, EIO, "cannot mount %s (is /dev/fuse there? is fuse3 installed?)",
			   fs->lab->mountpoint);
		return NULL;
	}
	return f;
}

static void tell_parent(int fd, const char *msg)
{
	if (fd < 0)
		return;
	ssize_t w = write(fd, msg, strlen(msg));
	(void)w;
	close(fd);
}

/* The daemon proper; `ready_fd` gets "" on success or the error line. */
static int serve(const struct options *o, int ready_fd)
{
	struct pv_err err;
	pv_err_clear(&err);
	struct pv_fs fs = {0};
	if (o->group) {
		struct group *gr = getgrnam(o->group);
		if (!gr) {
			pv_err_set(&err, EINVAL, "no group named `%s`: create it or drop --group", o->group);
			goto fail;
		}
		fs.gid = gr->gr_gid;
		fs.grouped = true;
	}
	if (pv_profiles_load(&fs.profiles, o->config[0] ? o->config : NULL, &err))
		goto fail;
	/* held until this process ends: nobody else mounts or collects this
	 * lab while it runs or tears down */
	int lock = pv_lab_lock(o->root, o->lab, &err);
	if (lock < 0)
		goto fail;
	/* a lab of this name that a killed daemon left goes first */
	if (pv_gc_locked(o->root, o->lab, &err))
		goto fail;
	if (pv_lab_open(o->lab, o->root, &fs.lab, &err))
		goto fail;
	if (pv_vms_open(&fs, &err)) {
		pv_lab_close(fs.lab);
		goto fail;
	}
	fs.fuse = mount_fs(&fs, &err);
	if (!fs.fuse) {
		pv_vms_close(&fs);
		pv_lab_close(fs.lab);
		goto fail;
	}
	struct fuse_session *se = fuse_get_session(fs.fuse);
	fuse_set_signal_handlers(se);
	if (!o->foreground) {
		char log[PATH_MAX + 8];
		snprintf(log, sizeof(log), "%s/%s.log", fs.lab->state_dir, fs.lab->name);
		int nul = open("/dev/null", O_RDWR);
		int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(lf >= 0 ? lf : nul, 2);
		if (nul > 2)
			close(nul);
		if (lf > 2)
			close(lf);
	}
	tell_parent(ready_fd, "");
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(cfg, 64);
	fuse_loop_mt(fs.fuse, cfg);
	fuse_loop_cfg_destroy(cfg);
	fuse_remove_signal_handlers(se);
	char mnt[PATH_MAX], log[PATH_MAX + 8];
	snprintf(mnt, sizeof(mnt), "%s", fs.lab->mountpoint);
	snprintf(log, sizeof(log), "%s/%s.log", fs.lab->state_dir, fs.lab->name);
	/* the lab goes first, the mount last: once the mount is gone, so is
	 * everything else (when the user unmounted, it is already gone) */
	pv_vms_close(&fs);
	pv_lab_close(fs.lab);
	pv_profiles_free(&fs.profiles);
	fuse_unmount(fs.fuse);
	fuse_destroy(fs.fuse);
	rmdir(mnt);
	unlink(log);
	char lockpath[PATH_MAX];
	pv_lab_lock_path(o->root, o->lab, lockpath, sizeof(lockpath));
	unlink(lockpath);
	close(lock);
	return 0;
fail:
	pv_profiles_free(&fs.profiles);
	if (ready_fd >= 0) {
		char line[600];
		snprintf(line, sizeof(line), "provium-labd: %s\n", err.msg);
		tell_parent(ready_fd, line);
	} else {
		fprintf(stderr, "provium-labd: %s\n", err.msg);
	}
	return 1;
}

void pv_fs_request_exit(struct pv_fs *fs)
{
	fuse_session_exit(fuse_get_session(fs->fuse));
}

static int run_gc(const struct options *o)
{
	struct pv_err err;
	pv_err_clear(&err);
	if (pv_gc(o->root, o->lab, &err)) {
		fprintf(stderr, "provium-labd: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, &o))
		return 2;
	if (geteuid() != 0) {
		fprintf(stderr, "provium-labd: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo\n");
		return 1;
	}
	if (o.gc)
		return run_gc(&o);
	if (o.foreground)
		return serve(&o, -1);
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC))
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		if (chdir("/"))
			_exit(1);
		_exit(serve(&o, pipefd[1]));
	}
	close(pipefd[1]);
	char msg[700];
	ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	if (n < 0)
		n = 0;
	msg[n] = '\0';
	if (n > 0) {
		fputs(msg, stderr);
		waitpid(pid, NULL, 0);
		return 1;
	}
	/* an empty message: ready, unless the child died before saying so */
	if (waitpid(pid, NULL, WNOHANG) == pid) {
		fprintf(stderr, "provium-labd: the daemon exited during start-up\n");
		return 1;
	}
	return 0;
}
