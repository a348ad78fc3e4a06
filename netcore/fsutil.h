/* Small file-system helpers. */
#ifndef PV_FSUTIL_H
#define PV_FSUTIL_H

/* Remove `path` and everything below it; 0 if it did not exist. Does not
 * cross into other file systems (a stale mount is detached, not walked). */
int pv_rm_rf(const char *path);

#endif
