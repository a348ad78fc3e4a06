#include "netcore/lab.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "netcore/fsutil.h"
#include "netcore/netns.h"

void pv_journal_path(const char *root, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/.state/%s.json", root, name);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static int lab_paths(struct pv_lab *lab, const char *name, const char *root, struct pv_err *err)
{
	snprintf(lab->name, sizeof(lab->name), "%s", name);
	if (strlen(root) >= sizeof(lab->root))
		return pv_err_set(err, ENAMETOOLONG, "root %s is too long", root);
	snprintf(lab->root, sizeof(lab->root), "%s", root);
	snprintf(lab->mountpoint, sizeof(lab->mountpoint), "%s/%s", root, name);
	snprintf(lab->state_dir, sizeof(lab->state_dir), "%s/.state", root);
	snprintf(lab->node_dir, sizeof(lab->node_dir), "%s/.state/%s", root, name);
	pv_journal_path(root, name, lab->journal, sizeof(lab->journal));
	pv_lab_netns_name(name, lab->netns, sizeof(lab->netns));
	int rc = mkdir_p(lab->node_dir, 0700);
	if (!rc)
		rc = mkdir_p(lab->mountpoint, 0755);
	if (rc)
		return pv_err_set(err, -rc, "cannot create %s: %s", lab->node_dir, strerror(-rc));
	return 0;
}

/* The lab's namespace; the calling thread moves into it for good. */
static int lab_enter_netns(struct pv_lab *lab, struct pv_err *err)
{
	int rc = pv_netns_create(lab->netns);
	if (rc)
		return pv_err_set(err, -rc, "cannot create namespace %s: %s%s", lab->netns,
				  strerror(-rc),
				  rc == -EEXIST ? " (run provium-labd --gc to remove a dead lab)" : "");
	int fd = pv_netns_open(lab->netns);
	if (fd < 0)
		return pv_err_set(err, -fd, "cannot open namespace %s", lab->netns);
	rc = pv_netns_enter(fd, &lab->host_nsfd);
	close(fd);
	if (rc)
		return pv_err_set(err, -rc, "cannot enter namespace %s: %s", lab->netns,
				  strerror(-rc));
	return 0;
}

/* Seen on 6.18: a bridge-family base chain registered in a namespace where
 * no bridge was ever made never sees a frame, even from bridges made later.
 * Making (and removing) one bridge first sets the namespace up for good. */
static int prime_bridge_hooks(struct pv_lab *lab, struct pv_err *err)
{
	int rc = pv_links_bridge_add(lab->k.links, "pvprime0", err);
	if (!rc)
		rc = pv_links_del(lab->k.links, "pvprime0", err);
	return rc;
}

/* Which qdisc kinds this kernel has, asked once on the lab namespace's
 * `lo` (nobody shapes it), so a write that needs a missing one fails up
 * front, naming the module. A failed probe is not fatal: the qdisc back-end
 * still refuses a missing kind when it is used. */
static void lab_probe_features(struct pv_lab *lab)
{
	int rc = pv_features_probe(pv_links_sock(lab->k.links), "lo", &lab->feat);
	lab->feat_probed = rc == 0;
	size_t n = 0;
	if (lab->feat_probed)
		n = (size_t)pv_features_render(&lab->feat, lab->features, sizeof(lab->features));
	else
		n = (size_t)snprintf(lab->features, sizeof(lab->features),
				     "netem unknown\ntbf unknown\nhtb unknown\n");
	if (n < sizeof(lab->features))
		snprintf(lab->features + n, sizeof(lab->features) - n, "nft_bridge yes\n");
}

int pv_lab_open(const char *name, const char *root, struct pv_lab **out, struct pv_err *err)
{
	if (!pv_name_valid(name))
		return pv_err_set(err, EINVAL,
				  "invalid lab name `%.40s`: use 1-32 of a-z 0-9 _ -, starting with a letter or digit",
				  name);
	struct pv_lab *lab = calloc(1, sizeof(*lab));
	if (!lab)
		return pv_err_set(err, ENOMEM, "out of memory");
	lab->host_nsfd = -1;
	pthread_mutex_init(&lab->lock, NULL);
	uint32_t prefix = (uint32_t)getpid();
	lab->g = pv_graph_new(prefix);
	int rc = lab_paths(lab, name, root, err);
	if (!rc)
		rc = lab_enter_netns(lab, err);
	if (!rc)
		rc = pv_links_open(&lab->k.links, err);
	if (!rc)
		rc = prime_bridge_hooks(lab, err);
	if (!rc)
		rc = pv_nft_open(&lab->k.nft, err);
	if (!rc)
		lab_probe_features(lab);
	if (rc) {
		pv_lab_close(lab);
		return rc;
	}
	lab->k.lab = lab->name;
	lab->k.node_dir = lab->node_dir;
	pv_lab_journal(lab);
	*out = lab;
	return 0;
}

void pv_lab_close(struct pv_lab *lab)
{
	if (!lab)
		return;
	pthread_mutex_lock(&lab->lock);
	lab->k.lab = lab->name;
	lab->k.node_dir = lab->node_dir;
	struct pv_graph *empty = pv_graph_new(0);
	struct pv_err err;
	if (lab->k.links)
		pv_reconcile(&lab->k, empty, &err);
	pv_graph_free(empty);
	if (lab->k.nft)
		pv_nft_close(lab->k.nft, 1);
	if (lab->k.links)
		pv_links_close(lab->k.links);
	/* leave the namespace before deleting it */
	if (lab->host_nsfd >= 0)
		pv_netns_leave(lab->host_nsfd);
	pv_netns_delete(lab->netns);
	/* namespaces the reconciler could not delete go by name */
	for (size_t i = 0; i < lab->k.ap.n_netns; i++) {
		char ns[96];
		pv_node_netns_name(lab->name, lab->k.ap.netns_nodes[i], ns, sizeof(ns));
		pv_netns_delete(ns);
	}
	pv_applied_free(&lab->k.ap);
	pv_rm_rf(lab->node_dir);
	unlink(lab->journal);
	pthread_mutex_unlock(&lab->lock);
	pthread_mutex_destroy(&lab->lock);
	for (unsigned i = 0; i < PV_ERRORS_KEEP; i++)
		free(lab->errors[i]);
	free(lab->journal_text);
	pv_graph_free(lab->g);
	free(lab);
}

int pv_lab_change_locked(struct pv_lab *lab, pv_mutate_fn mutate, void *arg, struct pv_err *err)
{
	struct pv_graph *next = pv_graph_clone(lab->g);
	int rc = mutate(next, arg, err);
	if (!rc) {
		rc = pv_reconcile(&lab->k, next, err);
		if (rc) {
			/* put the kernel back the way the graph says it was */
			struct pv_err ignore;
			pv_reconcile(&lab->k, lab->g, &ignore);
		}
	}
	if (rc) {
		pv_graph_free(next);
		return rc;
	}
	pv_graph_free(lab->g);
	lab->g = next;
	pv_lab_journal(lab);
	return 0;
}

int pv_lab_change(struct pv_lab *lab, pv_mutate_fn mutate, void *arg, struct pv_err *err)
{
	pthread_mutex_lock(&lab->lock);
	int rc = pv_lab_change_locked(lab, mutate, arg, err);
	pthread_mutex_unlock(&lab->lock);
	if (!rc && lab->after_change)
		lab->after_change(lab->after_ctx);
	return rc;
}

void pv_lab_log_error(struct pv_lab *lab, const char *path, const char *input, size_t input_len,
		      const struct pv_err *err)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* the input as one short line */
	char in[81];
	size_t n = 0;
	for (size_t i = 0; i < input_len && n < sizeof(in) - 1; i++) {
		char c = input[i];
		if (c == '\n' && i == input_len - 1)
			break;
		in[n++] = (c == '\n' || c == '\t') ? ' ' : (c < 32 || c == 127) ? '?' : c;
	}
	in[n] = '\0';
	char *line = NULL;
	if (asprintf(&line, "%s %s: \"%s\"%s: %s: %s\n", when, path, in,
		     input_len > sizeof(in) - 1 ? "..." : "", strerrorname_np(err->code) ?: "E?",
		     err->msg) < 0)
		return;
	pthread_mutex_lock(&lab->lock);
	unsigned slot = lab->n_errors % PV_ERRORS_KEEP;
	free(lab->errors[slot]);
	lab->errors[slot] = line;
	lab->n_errors++;
	pthread_mutex_unlock(&lab->lock);
}

char *pv_lab_errors_text(struct pv_lab *lab)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	pthread_mutex_lock(&lab->lock);
	unsigned first = lab->n_errors > PV_ERRORS_KEEP ? lab->n_errors - PV_ERRORS_KEEP : 0;
	for (unsigned i = first; i < lab->n_errors; i++)
		fputs(lab->errors[i % PV_ERRORS_KEEP], f);
	pthread_mutex_unlock(&lab->lock);
	fclose(f);
	return buf;
}

void pv_lab_journal(struct pv_lab *lab)
{
	json_object *j = json_object_new_object();
	json_object_object_add(j, "lab", json_object_new_string(lab->name));
	json_object_object_add(j, "pid", json_object_new_int(getpid()));
	json_object_object_add(j, "mount", json_object_new_string(lab->mountpoint));
	json_object *ns = json_object_new_array();
	json_object_array_add(ns, json_object_new_string(lab->netns));
	for (size_t i = 0; i < lab->k.ap.n_netns; i++) {
		char name[96];
		pv_node_netns_name(lab->name, lab->k.ap.netns_nodes[i], name, sizeof(name));
		json_object_array_add(ns, json_object_new_string(name));
	}
	json_object_object_add(j, "netns", ns);
	const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
	if (!lab->journal_text || strcmp(text, lab->journal_text)) {
		char tmp[PATH_MAX + 8];
		snprintf(tmp, sizeof(tmp), "%s.tmp", lab->journal);
		FILE *f = fopen(tmp, "we");
		if (f) {
			fprintf(f, "%s\n", text);
			if (fclose(f) == 0 && rename(tmp, lab->journal) == 0) {
				free(lab->journal_text);
				lab->journal_text = strdup(text);
			}
		}
	}
	json_object_put(j);
}
