/* Errors carried up to the file that the user wrote: an errno and one line. */
#ifndef PV_ERR_H
#define PV_ERR_H

#include <stddef.h>

struct pv_err {
	int code;      /* positive errno, 0 = no error */
	char msg[512]; /* one line, no trailing newline, names the fix */
};

/* Record an error and return -code, so callers can `return pv_err_set(...)`. */
int pv_err_set(struct pv_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clear an error record. */
void pv_err_clear(struct pv_err *e);

#endif
