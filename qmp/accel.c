#include "qmp/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *pv_accel_name(enum pv_accel a)
{
	return a == PV_ACCEL_KVM ? "kvm" : "tcg";
}

static void say(char *reason, size_t len, const char *fmt, const char *arg)
{
	if (reason && len)
		snprintf(reason, len, fmt, arg);
}

/* True if some "flags" line of /proc/cpuinfo has the word vmx or svm. */
static bool cpu_has_virt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	char line[8192];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		for (char *w = strtok(line, " \t\n"); w && !found; w = strtok(NULL, " \t\n"))
			found = !strcmp(w, "vmx") || !strcmp(w, "svm");
	}
	fclose(f);
	return found;
}

/* What the probe child reports through its pipe. */
enum probe_stage {
	ST_OK,
	ST_OPEN,
	ST_API,
	ST_VM,
	ST_MEM,
	ST_VCPU,
	ST_MMAP,
	ST_REGS,
	ST_RUN,
	ST_EXIT,
	ST_VALUE,
};

struct probe_res {
	int stage;
	int err;  /* errno of the failing call */
	int val;  /* exit reason or value seen */
};

static const uint8_t probe_code[] = {
	0xb0, 0x2a, /* mov $42, %al */
	0xe6, 0x10, /* out %al, $0x10 */
	0xf4,       /* hlt */
};

static struct probe_res fail(int stage, int val)
{
	return (struct probe_res){.stage = stage, .err = errno, .val = val};
}

static struct probe_res probe_vcpu(int vm, int vcpu, int mmap_size)
{
	struct kvm_run *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail(ST_MMAP, 0);
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail(ST_REGS, 0);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2};
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail(ST_REGS, 0);
	(void)vm;
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail(ST_RUN, 0);
	if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
	    run->io.port != 0x10)
		return fail(ST_EXIT, (int)run->exit_reason);
	int v = ((uint8_t *)run)[run->io.data_offset];
	return v == 42 ? (struct probe_res){.stage = ST_OK} : fail(ST_VALUE, v);
}

/* Runs in the child: every step is a plain syscall. */
static struct probe_res probe_child(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail(ST_OPEN, 0);
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return fail(ST_API, api);
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail(ST_VM, 0);
	uint8_t *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail(ST_MEM, 0);
	memcpy(mem, probe_code, sizeof(probe_code));
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0x1000,
		.memory_size = 0x1000,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail(ST_MEM, 0);
	int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0 || mmap_size <= 0)
		return fail(ST_VCPU, 0);
	return probe_vcpu(vm, vcpu, mmap_size);
}

static const char *stage_text(int stage)
{
	switch (stage) {
	case ST_OPEN: return "cannot open /dev/kvm";
	case ST_API: return "KVM_GET_API_VERSION is not 12";
	case ST_VM: return "KVM_CREATE_VM failed";
	case ST_MEM: return "cannot give the probe VM memory";
	case ST_VCPU: return "KVM_CREATE_VCPU failed";
	case ST_MMAP: return "cannot map the vCPU run area";
	case ST_REGS: return "cannot set the probe vCPU's registers";
	case ST_RUN: return "KVM_RUN failed";
	case ST_EXIT: return "the probe guest did not reach its port write";
	case ST_VALUE: return "the probe guest wrote the wrong value";
	default: return "probe failed";
	}
}

static int stage_errno(const struct probe_res *r)
{
	if (r->stage == ST_OPEN && r->err)
		return r->err;
	return r->stage == ST_EXIT || r->stage == ST_VALUE ? EIO : EOPNOTSUPP;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	/* A child stuck in KVM_RUN uninterruptibly would block waitpid forever;
	 * give it a moment, then leave it to init rather than hang. */
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int read_result(int fd, int timeout_ms, struct probe_res *r)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -ETIMEDOUT;
	return read(fd, r, sizeof(*r)) == (ssize_t)sizeof(*r) ? 0 : -EPIPE;
}

int pv_accel_probe_kvm(int timeout_ms, char *reason, size_t len)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return -e;
	}
	if (pid == 0) {
		/* the child's own bound: SIGALRM ends a KVM_RUN that spins */
		alarm((unsigned)(timeout_ms + 999) / 1000);
		struct probe_res r = probe_child();
		ssize_t w = write(pfd[1], &r, sizeof(r));
		_exit(w == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(pfd[1]);
	struct probe_res r;
	int rc = read_result(pfd[0], timeout_ms, &r);
	close(pfd[0]);
	reap(pid);
	if (rc == -ETIMEDOUT) {
		say(reason, len, "%s", "kvm: the probe guest did not finish in time "
			       "(this /dev/kvm cannot run guests)");
		return rc;
	}
	if (rc < 0) {
		say(reason, len, "%s", "kvm: the probe guest never reported (killed by its "
			       "alarm: KVM_RUN did not return)");
		return -ETIMEDOUT;
	}
	if (r.stage != ST_OK) {
		char buf[128];
		if (r.stage == ST_EXIT || r.stage == ST_VALUE)
			snprintf(buf, sizeof(buf), "%s (%s %d)", stage_text(r.stage),
				 r.stage == ST_EXIT ? "exit reason" : "value", r.val);
		else
			snprintf(buf, sizeof(buf), "%s (%s)", stage_text(r.stage),
				 r.err ? strerror(r.err) : "no error code");
		say(reason, len, "kvm: %s", buf);
		return -stage_errno(&r);
	}
	say(reason, len, "%s", "kvm: the probe guest ran");
	return 0;
}

enum pv_accel pv_accel_probe(char *reason, size_t len)
{
	if (!cpu_has_virt()) {
		say(reason, len, "%s", "kvm: CPU has no vmx/svm; using tcg");
		return PV_ACCEL_TCG;
	}
	char why[200];
	if (pv_accel_probe_kvm(1500, why, sizeof(why)) < 0) {
		say(reason, len, "%s; using tcg", why);
		return PV_ACCEL_TCG;
	}
	say(reason, len, "%s", "kvm: CPU has vmx/svm and a probe guest ran; using kvm");
	return PV_ACCEL_KVM;
}
