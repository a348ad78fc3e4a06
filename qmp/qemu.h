/* Launching one QEMU per VM node, driving it over QMP, and stopping it.
 *
 * QEMU is spawned in the network namespace of the CALLING THREAD (the lab's
 * daemon thread is inside the lab namespace), so the TAPs it creates for its
 * NICs live there. See docs/qmp.md for every option passed and why.
 *
 * Thread-safety: a struct pv_qemu may be used from several threads. QMP calls
 * are serialized by a mutex inside the handle (a nic_del waiting for the guest
 * holds it for up to unplug_timeout_ms); pv_qemu_alive(), pv_qemu_exit_fd()
 * and pv_qemu_pid() never wait for that mutex. pv_qemu_free() must not race
 * with any other call on the same handle.
 *
 * Reaping: the launcher reaps its own child with waitpid(pid). A daemon must
 * not reap with waitpid(-1) or ignore SIGCHLD (SIG_IGN), or exit statuses are lost. */
#ifndef PV_QEMU_H
#define PV_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "netcore/err.h"
#include "qmp/accel.h"
#include "qmp/qmp.h"

/* The virtio-serial port name the in-guest agent opens (/dev/virtio-ports/...). */
#define PV_QEMU_AGENT_PORT "org.provium.agent"

struct pv_qemu_virtfs {
	const char *path; /* host directory, exported read-only */
	const char *tag;  /* 9p mount tag, <= 31 chars of [A-Za-z0-9_-] */
};

struct pv_qemu_nic {
	const char *id;     /* QEMU device id ("n0"): [A-Za-z][A-Za-z0-9_.-]{0,26} */
	const char *ifname; /* TAP name QEMU creates in the current netns, <= 15 */
	const char *mac;    /* "52:54:00:12:34:56", unicast */
};

struct pv_qemu_spec {
	const char *name;        /* node name, shown by QEMU (-name) */
	const char *qemu;        /* binary; NULL = "qemu-system-x86_64" from PATH */
	const char *kernel;      /* NULL: no -kernel (firmware idles, for tests) */
	const char *initrd;      /* optional, only with kernel */
	const char *cmdline;     /* -append, optional, only with kernel */
	unsigned memory_mb;      /* 0 = 256 */
	unsigned cpus;           /* 0 = 1 */
	enum pv_accel accel;
	const char *run_dir;     /* holds qmp.sock, agent.sock, qemu.log; made if missing */
	const char *console_log; /* guest serial (ttyS0), appended; NULL = RUN/console.log */
	const struct pv_qemu_virtfs *virtfs;
	size_t n_virtfs;
	const struct pv_qemu_nic *nics; /* in guest probe order */
	size_t n_nics;
	bool paused;             /* -S: do not start the vCPUs */
	int start_timeout_ms;    /* QEMU start to QMP ready; 0 = 10000 */
	int unplug_timeout_ms;   /* nic_del's wait for the guest; 0 = 5000 */
};

struct pv_qemu;

/* argv for spec (NULL-terminated; free with pv_qemu_argv_free). -EINVAL with
 * the offending field named in err; -ENAMETOOLONG if a socket path under
 * run_dir would not fit a unix socket address. */
int pv_qemu_argv(const struct pv_qemu_spec *spec, char ***argv, struct pv_err *err);
void pv_qemu_argv_free(char **argv);

/* Validate one NIC (id, TAP name, MAC) as pv_qemu_argv and pv_qemu_nic_add do. */
int pv_qemu_nic_check(const struct pv_qemu_nic *nic, struct pv_err *err);

/* Spawn QEMU (new session, fds >= 3 closed, stdin /dev/null, stdout and stderr
 * appended to RUN/qemu.log) and connect QMP. On failure nothing is left running
 * and err carries the last line QEMU logged. *vm is set only on success. */
int pv_qemu_start(const struct pv_qemu_spec *spec, struct pv_qemu **vm,
		  struct pv_err *err);

pid_t pv_qemu_pid(const struct pv_qemu *vm);

/* false once QEMU has exited (reaped here, non-blocking). */
bool pv_qemu_alive(struct pv_qemu *vm);

/* A pidfd that becomes readable (POLLIN) when QEMU exits, for the daemon's
 * poll loop; then call pv_qemu_alive() to reap. Owned by vm. */
int pv_qemu_exit_fd(const struct pv_qemu *vm);

/* Wait up to timeout_ms for QEMU to exit: 0 once it has, -ETIMEDOUT. */
int pv_qemu_wait_exit(struct pv_qemu *vm, int timeout_ms);

/* true and *status (waitpid status, -1 if unknown) once QEMU has exited. */
bool pv_qemu_exit_status(struct pv_qemu *vm, int *status);

/* Graceful stop: QMP system_powerdown (the guest's ACPI power button), wait up
 * to grace_ms for QEMU to exit, then QMP quit, then SIGKILL; always reaped.
 * Returns 0 if QEMU exited by itself or by quit, 1 if it had to be killed. */
int pv_qemu_stop(struct pv_qemu *vm, int grace_ms);

/* SIGKILL and reap. */
void pv_qemu_kill(struct pv_qemu *vm);

/* Kill if still running, reap, close QMP, unlink the sockets, free. NULL ok. */
void pv_qemu_free(struct pv_qemu *vm);

/* pv_qmp_command under the handle's lock. */
int pv_qemu_command(struct pv_qemu *vm, const char *name, json_object *args,
		    int timeout_ms, json_object **ret, struct pv_err *err);

/* pv_qmp_poll_events under the handle's lock, for the event thread (poll
 * pv_qemu_qmp_fd() first). -ECONNRESET once QMP reached EOF. */
int pv_qemu_poll_events(struct pv_qemu *vm, pv_qmp_event_cb cb, void *arg);
int pv_qemu_qmp_fd(const struct pv_qemu *vm);

/* Hot-plug a virtio-net NIC: netdev_add tap (QEMU creates TAP `ifname` in its
 * namespace) and device_add virtio-net-pci with device id `id`; the netdev is
 * "<id>-net". Undone whole if device_add fails. */
int pv_qemu_nic_add(struct pv_qemu *vm, const char *id, const char *ifname,
		    const char *mac, struct pv_err *err);

/* device_del, wait for DEVICE_DELETED (the guest must eject it: ACPI hot-plug),
 * then netdev_del (the TAP disappears). If the guest does not eject within
 * unplug_timeout_ms (no OS, or paused), the netdev is deleted anyway so the
 * host side is clean, and -ETIMEDOUT says the guest still holds the device;
 * its id stays taken until the guest lets go. */
int pv_qemu_nic_del(struct pv_qemu *vm, const char *id, struct pv_err *err);

/* QMP set_link on the NIC `id`: the guest sees carrier loss / return. */
int pv_qemu_set_link(struct pv_qemu *vm, const char *id, bool up, struct pv_err *err);

#endif
