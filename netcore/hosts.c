#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcore/reconcile.h"

char *pv_hosts_render(const struct pv_graph *g, const struct pv_node *n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	fprintf(f, "127.0.1.1\t%s\n", n->name);
	for (size_t i = 0; i < g->n_bridges; i++) {
		const struct pv_bridge *b = &g->bridges[i];
		if (!pv_bridge_member(b, n->id))
			continue;
		for (size_t j = 0; j < b->n_members; j++) {
			const struct pv_member *m = &b->members[j];
			const struct pv_node *peer = pv_graph_node_by_id(g, m->node_id);
			char ip[32];
			pv_member_ip(b, m, ip, sizeof(ip));
			fprintf(f, "%s\t%s.%s\n", ip, peer->name, b->name);
		}
	}
	fclose(f);
	return buf;
}

void pv_lab_netns_name(const char *lab, char *out, size_t len)
{
	snprintf(out, len, "pv-%s", lab);
}

/* '.' cannot appear in names, so lab "a-b" node "c" and lab "a" node "b-c"
 * never meet. */
void pv_node_netns_name(const char *lab, const char *node, char *out, size_t len)
{
	snprintf(out, len, "pv-%s.%s", lab, node);
}

void pv_node_hosts_path(const char *node_dir, const char *node, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.hosts", node_dir, node);
}
