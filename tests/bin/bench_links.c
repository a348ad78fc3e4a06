/* bench_links: time 50 veth ports and 1000 counter reads in throwaway
 * namespaces. Needs root. Prints one "bench NAME VALUE UNIT" line per figure.
 *   bench_links [PORTS] [READS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "netcore/links.h"
#include "netcore/netns.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int run(const char *hostns, const char *peerns, int ports, int reads)
{
	struct pv_links *l = NULL;
	struct pv_err err = { 0 };
	struct pv_link_stats st;
	char host[16], cidr[32];
	int saved = -1, rc;
	int hfd = pv_netns_open(hostns), pfd = pv_netns_open(peerns);

	if (hfd < 0 || pfd < 0 || pv_netns_enter(hfd, &saved) < 0) {
		fprintf(stderr, "bench_links: cannot open/enter namespaces\n");
		rc = 1;
		goto out;
	}
	rc = pv_links_open(&l, &err);
	if (rc == 0)
		rc = pv_links_bridge_add(l, "pvbr", &err);
	double t0 = now_us();
	for (int i = 0; rc == 0 && i < ports; i++) {
		char peer[16];
		snprintf(host, sizeof(host), "pvp%d", i);
		snprintf(peer, sizeof(peer), "e%d", i);
		snprintf(cidr, sizeof(cidr), "10.78.%d.%d/16", i / 200, i % 200 + 1);
		struct pv_veth_spec s = {
			.host_ifname = host, .master = "pvbr", .host_up = true, .peer_nsfd = pfd,
			.peer_ifname = peer, .peer_mac = { 0x02, 0x70, 0, 0, i >> 8, i & 0xff },
			.peer_cidr = cidr,
		};
		rc = pv_links_veth_add(l, &s, &err);
	}
	double t1 = now_us();
	for (int i = 0; rc == 0 && i < reads; i++)
		rc = pv_links_stats(l, "pvp0", &st);
	double t2 = now_us();
	if (rc != 0) {
		fprintf(stderr, "bench_links: %d %s\n", rc, err.msg);
		rc = 1;
		goto out;
	}
	printf("bench veth_add_%d_total %.1f ms\n", ports, (t1 - t0) / 1e3);
	printf("bench veth_add_each %.0f us\n", (t1 - t0) / ports);
	printf("bench links_stats_%d_total %.1f ms\n", reads, (t2 - t1) / 1e3);
	printf("bench links_stats_each %.1f us\n", (t2 - t1) / reads);
out:
	pv_links_close(l);
	if (saved >= 0)
		pv_netns_leave(saved);
	if (hfd >= 0)
		close(hfd);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

int main(int argc, char **argv)
{
	int ports = argc > 1 ? atoi(argv[1]) : 50, reads = argc > 2 ? atoi(argv[2]) : 1000;
	char hostns[64], peerns[64];

	if (geteuid() != 0) {
		printf("skipped - bench_links: needs root\n");
		return 0;
	}
	snprintf(hostns, sizeof(hostns), "pvbench%dh", (int)getpid());
	snprintf(peerns, sizeof(peerns), "pvbench%dp", (int)getpid());
	int rc = pv_netns_create(hostns);
	if (rc == 0)
		rc = pv_netns_create(peerns);
	if (rc == 0)
		rc = run(hostns, peerns, ports, reads);
	else
		fprintf(stderr, "bench_links: pv_netns_create: %d\n", rc);
	pv_netns_delete(peerns);
	pv_netns_delete(hostns);
	return rc ? 1 : 0;
}
