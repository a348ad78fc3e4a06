/* Named network namespaces, made the way iproute2 makes them: a bind mount of
 * the namespace file at /run/netns/NAME, so `ip netns exec NAME ...` works. */
#ifndef PV_NETNS_H
#define PV_NETNS_H

#include <stdbool.h>

#define PV_NETNS_DIR "/run/netns"

/* Create /run/netns/NAME holding a fresh network namespace with `lo` up.
 * The calling thread's namespace is unchanged. -EEXIST if NAME exists. */
int pv_netns_create(const char *name);

/* Open /run/netns/NAME read-only; returns an fd or -errno (-ENOENT). */
int pv_netns_open(const char *name);

bool pv_netns_exists(const char *name);

/* Kill (SIGKILL) every process whose network namespace is NAME, unmount and
 * unlink /run/netns/NAME. Returns 0 if NAME did not exist. */
int pv_netns_delete(const char *name);

/* Move the calling thread into the namespace `fd`; *saved gets an fd of the
 * previous one for pv_netns_leave. Returns 0 or -errno. */
int pv_netns_enter(int fd, int *saved);
int pv_netns_leave(int saved);

#endif
