/* A QMP client over QEMU's unix control socket (json-c).
 *
 * One handle per QEMU. The handle is NOT thread-safe: callers serialize every
 * call on one handle (qmp/qemu.c holds a mutex per VM for that). A daemon thread
 * that watches for events polls pv_qmp_fd() for POLLIN and then calls
 * pv_qmp_poll_events() under the same lock its command callers take.
 *
 * Every command carries a unique "id"; the reply is matched by it, so a reply
 * that arrives after its command timed out is recognised and dropped. Events
 * (SHUTDOWN, STOP, DEVICE_DELETED, NIC_RX_FILTER_CHANGED...) that arrive while a
 * command waits are queued and handed out by pv_qmp_poll_events(). */
#ifndef PV_QMP_H
#define PV_QMP_H

#include <json-c/json.h>

#include "netcore/err.h"

struct pv_qmp;

/* Connect to the QMP socket at `path`, retrying while it does not exist yet or
 * refuses (QEMU still starting) until timeout_ms; read the greeting and leave
 * capabilities negotiation mode. -ETIMEDOUT, -ENAMETOOLONG, -ECONNRESET (QEMU
 * closed the socket), -EPROTO (not QMP). *q is set only on success. */
int pv_qmp_connect(const char *path, int timeout_ms, struct pv_qmp **q,
		   struct pv_err *err);

/* As pv_qmp_connect, but give up with -ECHILD as soon as `abort_fd` (>= 0,
 * e.g. a pidfd of the QEMU process) becomes readable, so a QEMU that dies
 * during start-up is noticed at once rather than at the timeout. */
int pv_qmp_connect_until(const char *path, int timeout_ms, int abort_fd,
			 struct pv_qmp **q, struct pv_err *err);

/* Run command `name` with `args` (borrowed, may be NULL). On success *ret (if
 * ret is not NULL) gets the "return" value, which the caller json_object_put()s.
 * Errors: -ECONNRESET (QEMU closed the socket: it died or quit), -ETIMEDOUT (no
 * reply in timeout_ms; the handle stays usable), -ENOENT (QEMU's DeviceNotFound),
 * -EOPNOTSUPP (CommandNotFound), -EEXIST (a duplicate id), -EIO (any other QMP
 * error); err then carries QEMU's own "desc". */
int pv_qmp_command(struct pv_qmp *q, const char *name, json_object *args,
		   int timeout_ms, json_object **ret, struct pv_err *err);

/* The socket, for poll(POLLIN) by an event thread. */
int pv_qmp_fd(const struct pv_qmp *q);

/* `event` is the QMP event name, `data` its "data" member (NULL if none); both
 * borrowed for the duration of the call. */
typedef void (*pv_qmp_event_cb)(const char *event, json_object *data, void *arg);

/* Read whatever is available without blocking and hand every queued event to
 * cb in arrival order. Returns the number of events delivered, or -ECONNRESET
 * once the socket reached EOF (after delivering the events that preceded it,
 * so a SHUTDOWN is seen before the EOF). */
int pv_qmp_poll_events(struct pv_qmp *q, pv_qmp_event_cb cb, void *arg);

/* Wait up to timeout_ms for event `name` (and, if `device` is not NULL, whose
 * data.device equals it), looking first at the queue. Other events stay
 * queued. On success *data (if not NULL) gets the event's data (caller puts).
 * -ETIMEDOUT, -ECONNRESET. */
int pv_qmp_wait_event(struct pv_qmp *q, const char *name, const char *device,
		      int timeout_ms, json_object **data, struct pv_err *err);

/* True once the socket has reached EOF or failed. */
int pv_qmp_dead(const struct pv_qmp *q);

void pv_qmp_close(struct pv_qmp *q);

#endif
