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
	int mode; /* 0 real mode, 1 long mode */
};

/* Valid in both 16-bit real mode and 64-bit mode. */
static const uint8_t probe_code[] = {
	0xb0, 0x2a, /* mov $42, %al */
	0xe6, 0x10, /* out %al, $0x10 */
	0xf4,       /* hlt */
};

/* Guest memory layout: code at 0x1000, page tables at 0x2000..0x4fff. */
#define PROBE_MEM 0x10000
#define PROBE_CODE 0x1000
#define PROBE_PML4 0x2000

static struct probe_res fail(int stage, int val)
{
	return (struct probe_res){.stage = stage, .err = errno, .val = val};
}

/* One 2 MiB identity page at 0, so the code runs where it lies. */
static void build_page_tables(uint8_t *mem)
{
	uint64_t *pml4 = (uint64_t *)(mem + PROBE_PML4);
	uint64_t *pdpt = (uint64_t *)(mem + PROBE_PML4 + 0x1000);
	uint64_t *pd = (uint64_t *)(mem + PROBE_PML4 + 0x2000);
	pml4[0] = (PROBE_PML4 + 0x1000) | 3; /* present, writable */
	pdpt[0] = (PROBE_PML4 + 0x2000) | 3;
	pd[0] = 0x83;                        /* present, writable, 2 MiB */
}

static void long_mode_sregs(struct kvm_sregs *sr)
{
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11,
		.present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = code;
	data.selector = 16;
	data.type = 3;
	data.l = 0;
	data.db = 1;
	sr->cs = code;
	sr->ds = sr->es = sr->fs = sr->gs = sr->ss = data;
	sr->cr3 = PROBE_PML4;
	sr->cr4 = 1u << 5;                 /* PAE */
	sr->cr0 = 0x80050033;              /* PG WP NE ET MP PE */
	sr->efer = (1u << 8) | (1u << 10); /* LME LMA */
}

static struct probe_res run_vcpu(int vcpu, int mmap_size, int long_mode)
{
	struct kvm_run *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail(ST_MMAP, 0);
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail(ST_REGS, 0);
	if (long_mode) {
		long_mode_sregs(&sregs);
	} else {
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
	}
	struct kvm_regs regs = {.rip = PROBE_CODE, .rflags = 0x2, .rsp = PROBE_MEM};
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail(ST_REGS, 0);
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail(ST_RUN, 0);
	if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
	    run->io.port != 0x10)
		return fail(ST_EXIT, (int)run->exit_reason);
	/* make sure the mode asked for is the mode that ran */
	if (long_mode && (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0 || !(sregs.efer & (1u << 10))))
		return fail(ST_EXIT, (int)run->exit_reason);
	int v = ((uint8_t *)run)[run->io.data_offset];
	return v == 42 ? (struct probe_res){.stage = ST_OK} : fail(ST_VALUE, v);
}

static struct probe_res probe_mode(int kvm, int long_mode)
{
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail(ST_VM, 0);
	uint8_t *mem = mmap(NULL, PROBE_MEM, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail(ST_MEM, 0);
	memcpy(mem + PROBE_CODE, probe_code, sizeof(probe_code));
	build_page_tables(mem);
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = PROBE_MEM,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail(ST_MEM, 0);
	int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0 || mmap_size <= 0)
		return fail(ST_VCPU, 0);
	struct probe_res r = run_vcpu(vcpu, mmap_size, long_mode);
	r.mode = long_mode;
	return r;
}

/* Runs in the child: every step is a plain syscall. Real mode is what the
 * firmware needs, long mode with paging what a stock kernel needs. */
static struct probe_res probe_child(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail(ST_OPEN, 0);
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return fail(ST_API, api);
	struct probe_res r = probe_mode(kvm, 0);
	return r.stage == ST_OK ? probe_mode(kvm, 1) : r;
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
		char line[200];
		snprintf(line, sizeof(line), "%s%s", buf,
			 r.stage >= ST_VM ? (r.mode ? " in long mode" : " in real mode") : "");
		say(reason, len, "kvm: %s", line);
		return -stage_errno(&r);
	}
	say(reason, len, "%s", "kvm: the probe guest ran in real and long mode");
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
