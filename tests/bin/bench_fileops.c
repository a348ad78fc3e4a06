/* Timing helper for `make bench`: the median cost of one file operation, or
 * of one command run as a subprocess, measured in one process.
 *
 *   bench_fileops read PATH N                 open, read all, close
 *   bench_fileops write PATH N TEXT_A TEXT_B  open, write, close (A and B alternate)
 *   bench_fileops exec NETNS N 'CMD A' 'CMD B'   fork+exec (argv split on blanks) inside
 *                                             /run/netns/NETNS, wait (A and B alternate)
 * Prints "median_us P50 p90_us P90". */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int op_read(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return 0;
}

static int op_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int op_exec(const char *cmd)
{
	char buf[1024], *argv[64];
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", cmd);
	for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < 63; w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: see the header of tests/bin/bench_fileops.c\n");
		return 2;
	}
	const char *mode = argv[1];
	int n = atoi(argv[3]);
	if (!strcmp(mode, "exec")) {
		char ns[256];
		snprintf(ns, sizeof(ns), "/run/netns/%s", argv[2]);
		int fd = open(ns, O_RDONLY);
		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			perror(ns);
			return 1;
		}
		close(fd);
	}
	double *t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		int rc;
		if (!strcmp(mode, "read"))
			rc = op_read(argv[2]);
		else if (!strcmp(mode, "write"))
			rc = op_write(argv[2], argv[4 + (i & 1)]);
		else
			rc = op_exec(argv[4 + (i & 1)]);
		t[i] = now_us() - t0;
		if (rc) {
			fprintf(stderr, "bench_fileops: %s failed at iteration %d: %s\n", mode, i,
				strerror(errno));
			return 1;
		}
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("median_us %.1f p90_us %.1f\n", t[n / 2], t[n * 9 / 10]);
	free(t);
	return 0;
}
