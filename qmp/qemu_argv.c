/* Building QEMU's command line from a launch spec: validation and quoting. */
#include "qmp/qemu.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct vec {
	char **v;
	size_t n, cap;
	int oom;
};

static void push(struct vec *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void push(struct vec *a, const char *fmt, ...)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, ncap * sizeof(*nv));
		if (!nv) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = ncap;
	}
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&a->v[a->n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		a->oom = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

void pv_qemu_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* QEMU's option syntax splits on ','; a literal comma is written ",,". Caller
 * frees. */
static char *opt_escape(const char *s)
{
	size_t n = strlen(s), commas = 0;
	for (const char *p = s; *p; p++)
		commas += *p == ',';
	char *out = malloc(n + commas + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

/* QEMU ids: a letter, then letters, digits, '-', '.', '_'. */
static int valid_id(const char *id, size_t max)
{
	if (!id || !isalpha((unsigned char)id[0]) || strlen(id) > max)
		return 0;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._", *p))
			return 0;
	return 1;
}

static int valid_ifname(const char *s)
{
	if (!s || !*s || strlen(s) > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (const char *p = s; *p; p++)
		if (*p == '/' || *p == ',' || *p == ':' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return 0;
	return 1;
}

/* Six hex pairs with ':' and a unicast first octet. */
static int valid_mac(const char *s)
{
	if (!s || strlen(s) != 17)
		return 0;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	unsigned first = (unsigned)strtoul(s, NULL, 16);
	return !(first & 1);
}

static int valid_tag(const char *s)
{
	if (!s || !*s || strlen(s) > 31)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return 1;
}

int pv_qemu_nic_check(const struct pv_qemu_nic *n, struct pv_err *err)
{
	if (!valid_id(n->id, 27))
		return pv_err_set(err, EINVAL,
				  "NIC id '%s' is not a QEMU id: use a letter then up to "
				  "26 letters, digits, '-', '.', '_' (e.g. n0)",
				  n->id ? n->id : "(null)");
	if (!valid_ifname(n->ifname))
		return pv_err_set(err, EINVAL,
				  "NIC %s: TAP name '%s' is not an interface name: 1 to 15 "
				  "characters without '/', ',', ':' or spaces",
				  n->id, n->ifname ? n->ifname : "(null)");
	if (!valid_mac(n->mac))
		return pv_err_set(err, EINVAL,
				  "NIC %s: MAC '%s' is not a unicast aa:bb:cc:dd:ee:ff "
				  "address (e.g. 52:54:00:12:34:56)",
				  n->id, n->mac ? n->mac : "(null)");
	return 0;
}

static int check_spec(const struct pv_qemu_spec *s, struct pv_err *err)
{
	if (!s->name || !*s->name || strchr(s->name, ','))
		return pv_err_set(err, EINVAL, "VM name '%s' is empty or has a ','",
				  s->name ? s->name : "(null)");
	if (!s->run_dir || s->run_dir[0] != '/')
		return pv_err_set(err, EINVAL,
				  "VM %s: run_dir '%s' must be an absolute directory path",
				  s->name, s->run_dir ? s->run_dir : "(null)");
	if (strlen(s->run_dir) + sizeof("/agent.sock") > sizeof(((struct sockaddr_un *)0)->sun_path))
		return pv_err_set(err, ENAMETOOLONG,
				  "VM %s: run_dir %s is too long for its sockets (unix "
				  "socket paths hold 107 bytes): use a shorter directory",
				  s->name, s->run_dir);
	if (!s->kernel && (s->initrd || s->cmdline))
		return pv_err_set(err, EINVAL,
				  "VM %s: an initrd or cmdline needs a kernel", s->name);
	for (size_t i = 0; i < s->n_virtfs; i++)
		if (!s->virtfs[i].path || !valid_tag(s->virtfs[i].tag))
			return pv_err_set(err, EINVAL,
					  "VM %s: virtfs export %zu needs a path and a tag "
					  "of 1 to 31 letters, digits, '_' or '-'",
					  s->name, i);
	for (size_t i = 0; i < s->n_nics; i++) {
		int rc = pv_qemu_nic_check(&s->nics[i], err);
		if (rc < 0)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->nics[i].id, s->nics[j].id) ||
			    !strcmp(s->nics[i].ifname, s->nics[j].ifname))
				return pv_err_set(err, EEXIST,
						  "VM %s: NICs %s and %s share an id or a "
						  "TAP name",
						  s->name, s->nics[j].id, s->nics[i].id);
	}
	return 0;
}

static void push_machine(struct vec *a, const struct pv_qemu_spec *s)
{
	push(a, "%s", s->qemu ? s->qemu : "qemu-system-x86_64");
	push(a, "-name");
	push(a, "%s", s->name);
	/* pc, not q35: ACPI PCI hot-plug on the root bus works there */
	push(a, "-machine");
	push(a, "pc");
	push(a, "-accel");
	push(a, "%s", pv_accel_name(s->accel));
	if (s->accel == PV_ACCEL_KVM) {
		push(a, "-cpu");
		push(a, "host");
	}
	push(a, "-m");
	push(a, "%u", s->memory_mb ? s->memory_mb : 256);
	push(a, "-smp");
	push(a, "%u", s->cpus ? s->cpus : 1);
	/* only the devices asked for below; no ~/.config or /etc/qemu influence */
	push(a, "-nodefaults");
	/* a guest that panics (panic=-1) or reboots ends QEMU: a boot that
	 * fails is noticed at once, not at the agent timeout */
	push(a, "-no-reboot");
	push(a, "-no-user-config");
	push(a, "-display");
	push(a, "none");
	if (s->paused)
		push(a, "-S");
}

static void push_chardevs(struct vec *a, const struct pv_qemu_spec *s,
			  const char *run, const char *console)
{
	push(a, "-chardev");
	push(a, "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", run);
	push(a, "-mon");
	push(a, "chardev=qmp,mode=control");
	/* appended so a reboot of the node keeps the previous boot's output */
	push(a, "-chardev");
	push(a, "file,id=console,path=%s,append=on", console);
	push(a, "-serial");
	push(a, "chardev:console");
	push(a, "-chardev");
	push(a, "socket,id=agent,path=%s/agent.sock,server=on,wait=off", run);
	push(a, "-device");
	push(a, "virtio-serial-pci,id=vser0");
	/* entropy from the host: without it a TCG guest's crng is ready only
	 * ~3.5 s after boot, and everything that asks for random bytes early
	 * (the agent's first replies among them) waits for it */
	push(a, "-device");
	push(a, "virtio-rng-pci");
	push(a, "-device");
	push(a, "virtserialport,bus=vser0.0,chardev=agent,name=" PV_QEMU_AGENT_PORT);
	if (s->kernel) {
		push(a, "-kernel");
		push(a, "%s", s->kernel);
		if (s->initrd) {
			push(a, "-initrd");
			push(a, "%s", s->initrd);
		}
		if (s->cmdline) {
			push(a, "-append");
			push(a, "%s", s->cmdline);
		}
	}
}

static void push_exports(struct vec *a, const struct pv_qemu_spec *s)
{
	for (size_t i = 0; i < s->n_virtfs; i++) {
		char *p = opt_escape(s->virtfs[i].path);
		if (!p) {
			a->oom = 1;
			return;
		}
		/* multidevs=remap: the export may span several host filesystems */
		push(a, "-virtfs");
		push(a, "local,path=%s,mount_tag=%s,security_model=none,readonly=on,"
			"multidevs=remap",
		     p, s->virtfs[i].tag);
		free(p);
	}
	for (size_t i = 0; i < s->n_nics; i++) {
		const struct pv_qemu_nic *n = &s->nics[i];
		push(a, "-netdev");
		push(a, "tap,id=%s-net,ifname=%s,script=no,downscript=no", n->id,
		     n->ifname);
		push(a, "-device");
		push(a, "virtio-net-pci,netdev=%s-net,mac=%s,id=%s", n->id, n->mac, n->id);
	}
}

int pv_qemu_argv(const struct pv_qemu_spec *spec, char ***argv, struct pv_err *err)
{
	int rc = check_spec(spec, err);
	if (rc < 0)
		return rc;
	char *run = opt_escape(spec->run_dir);
	char *console = NULL;
	if (run && spec->console_log)
		console = opt_escape(spec->console_log);
	else if (run && asprintf(&console, "%s/console.log", run) < 0)
		console = NULL;
	struct vec a = {0};
	if (!run || !console)
		a.oom = 1;
	push_machine(&a, spec);
	if (!a.oom)
		push_chardevs(&a, spec, run, console);
	if (!a.oom)
		push_exports(&a, spec);
	free(run);
	free(console);
	if (a.oom) {
		if (a.v)
			a.v[a.n] = NULL;
		pv_qemu_argv_free(a.v);
		return pv_err_set(err, ENOMEM, "out of memory building QEMU's argv");
	}
	*argv = a.v;
	return 0;
}
