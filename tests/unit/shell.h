/* Shell helpers for tests that look at the product from outside (ip, tc,
 * nft, ping, pgrep): tests may run those tools, the product never does. */
#ifndef PV_TEST_SHELL_H
#define PV_TEST_SHELL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Run a shell command; its exit status, or -1 if it did not exit. */
static inline int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* A shell command's whole stdout, NUL-terminated; caller frees. */
static inline char *sh_capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *sh_capture(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	if (!f)
		return strdup("");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += r;
		if (cap - len < 2)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	pclose(f);
	return buf;
}

#endif
