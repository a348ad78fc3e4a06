/* Node profiles: `[profiles.NAME]` tables of provium.toml. Without a config
 * file two exist: `default` (a VM of the default guest) and `netns`. */
#ifndef PV_PROFILE_H
#define PV_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "netcore/err.h"
#include "netcore/graph.h"

struct pv_profile {
	pv_name name;
	enum pv_node_kind kind;
	char kernel[512], initrd[512], cmdline[512]; /* "" = the default guest's */
	unsigned memory_mb, cpus;
	unsigned boot_timeout_s;
};

struct pv_profiles {
	struct pv_profile *list;
	size_t n;
};

/* The built-in profiles, then those of `path` (NULL: none). A profile named
 * like a built-in replaces it. -EINVAL with "FILE:LINE: ..." on bad input. */
int pv_profiles_load(struct pv_profiles *ps, const char *path, struct pv_err *err);
void pv_profiles_free(struct pv_profiles *ps);
const struct pv_profile *pv_profile_find(const struct pv_profiles *ps, const char *name);

#endif
