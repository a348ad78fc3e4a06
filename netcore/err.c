#include "netcore/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int pv_err_set(struct pv_err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		/* one line, whatever a caller passed in */
		for (char *p = e->msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	return -code;
}

void pv_err_clear(struct pv_err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}
