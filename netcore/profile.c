/* A small reader for the part of TOML that profiles use: [profiles.NAME]
 * headers, `key = "string"` and `key = integer` lines, # comments. */
#include "netcore/profile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netcore/parse.h"

static struct pv_profile *profile_add(struct pv_profiles *ps, const char *name,
				      enum pv_node_kind kind)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!strcmp(ps->list[i].name, name))
			return &ps->list[i];
	struct pv_profile *l = realloc(ps->list, (ps->n + 1) * sizeof(*l));
	if (!l)
		return NULL;
	ps->list = l;
	struct pv_profile *p = &ps->list[ps->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->kind = kind;
	p->memory_mb = 256;
	p->cpus = 1;
	p->boot_timeout_s = 90;
	return p;
}

static int value_string(char *v, char *out, size_t len)
{
	size_t n = strlen(v);
	if (n < 2 || v[0] != '"' || v[n - 1] != '"')
		return -1;
	v[n - 1] = '\0';
	if (strchr(v + 1, '"') || strchr(v + 1, '\\') || n - 2 >= len)
		return -1;
	snprintf(out, len, "%s", v + 1);
	return 0;
}

static int value_uint(char *v, unsigned min, unsigned max, unsigned *out)
{
	char s[32];
	if (v[0] == '"' && value_string(v, s, sizeof(s)) == 0)
		v = s;
	uint64_t x;
	if (pv_parse_u64(v, min, max, &x, "value", NULL))
		return -1;
	*out = (unsigned)x;
	return 0;
}

static int set_key(struct pv_profile *p, const char *key, char *v)
{
	char s[32];
	if (!strcmp(key, "kind")) {
		if (value_string(v, s, sizeof(s)))
			return -1;
		if (!strcmp(s, "qemu"))
			p->kind = PV_NODE_QEMU;
		else if (!strcmp(s, "netns"))
			p->kind = PV_NODE_NETNS;
		else
			return -1;
		return 0;
	}
	if (!strcmp(key, "kernel"))
		return value_string(v, p->kernel, sizeof(p->kernel));
	if (!strcmp(key, "initrd"))
		return value_string(v, p->initrd, sizeof(p->initrd));
	if (!strcmp(key, "cmdline"))
		return value_string(v, p->cmdline, sizeof(p->cmdline));
	if (!strcmp(key, "cpus"))
		return value_uint(v, 1, 64, &p->cpus);
	if (!strcmp(key, "boot_timeout"))
		return value_uint(v, 1, 3600, &p->boot_timeout_s);
	if (!strcmp(key, "memory")) {
		if (v[0] == '"' && value_string(v, s, sizeof(s)) == 0)
			return pv_parse_mib(s, &p->memory_mb, NULL) ? -1 : 0;
		return pv_parse_mib(v, &p->memory_mb, NULL) ? -1 : 0;
	}
	return -1;
}

static void strip_comment(char *line)
{
	bool quoted = false;
	for (char *c = line; *c; c++) {
		if (*c == '"')
			quoted = !quoted;
		else if (*c == '#' && !quoted) {
			*c = '\0';
			return;
		}
	}
}

static int parse_file(struct pv_profiles *ps, const char *path, FILE *f, struct pv_err *err)
{
	char line[1024];
	struct pv_profile *cur = NULL;
	for (unsigned no = 1; fgets(line, sizeof(line), f); no++) {
		strip_comment(line);
		char *t = pv_trim(line);
		if (!*t)
			continue;
		if (*t == '[') {
			char name[64];
			if (sscanf(t, "[profiles.%63[a-z0-9_-]]", name) != 1 || !pv_name_valid(name) ||
			    t[strlen(t) - 1] != ']')
				return pv_err_set(err, EINVAL, "%s:%u: expected [profiles.NAME]", path, no);
			cur = profile_add(ps, name, PV_NODE_QEMU);
			if (!cur)
				return pv_err_set(err, ENOMEM, "out of memory");
			continue;
		}
		char *eq = strchr(t, '=');
		if (!cur || !eq)
			return pv_err_set(err, EINVAL, "%s:%u: expected `key = value` inside [profiles.NAME]",
					  path, no);
		*eq = '\0';
		char *key = pv_trim(t), *v = pv_trim(eq + 1);
		if (set_key(cur, key, v))
			return pv_err_set(err, EINVAL,
					  "%s:%u: bad `%s`: keys are kind (\"qemu\"|\"netns\"), kernel, initrd, cmdline (strings), memory (\"256M\"), cpus, boot_timeout (seconds)",
					  path, no, key);
	}
	return 0;
}

int pv_profiles_load(struct pv_profiles *ps, const char *path, struct pv_err *err)
{
	memset(ps, 0, sizeof(*ps));
	if (!profile_add(ps, "default", PV_NODE_QEMU) || !profile_add(ps, "netns", PV_NODE_NETNS))
		return pv_err_set(err, ENOMEM, "out of memory");
	if (!path)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return pv_err_set(err, errno, "cannot read %s: %s", path, strerror(errno));
	int rc = parse_file(ps, path, f, err);
	fclose(f);
	return rc;
}

void pv_profiles_free(struct pv_profiles *ps)
{
	free(ps->list);
	memset(ps, 0, sizeof(*ps));
}

const struct pv_profile *pv_profile_find(const struct pv_profiles *ps, const char *name)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!strcmp(ps->list[i].name, name))
			return &ps->list[i];
	return NULL;
}
