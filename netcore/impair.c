#include "netcore/impair.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "netcore/parse.h"

enum unit { U_MS, U_PPM, U_BPS };

static const struct {
	const char *name;
	enum unit unit;
	bool netem;
} keys[PV_IMP_NKEYS] = {
	[PV_IMP_LATENCY] = {"latency_ms", U_MS, true},
	[PV_IMP_JITTER] = {"jitter_ms", U_MS, true},
	[PV_IMP_DROP] = {"drop_pct", U_PPM, true},
	[PV_IMP_DROP_CORR] = {"drop_corr_pct", U_PPM, true},
	[PV_IMP_DUPLICATE] = {"duplicate_pct", U_PPM, true},
	[PV_IMP_CORRUPT] = {"corrupt_pct", U_PPM, true},
	[PV_IMP_REORDER] = {"reorder_pct", U_PPM, true},
	[PV_IMP_BANDWIDTH] = {"bandwidth_bps", U_BPS, false},
};

static const char key_list[] =
	"latency_ms, jitter_ms, drop_pct, drop_corr_pct, duplicate_pct, corrupt_pct, reorder_pct, bandwidth_bps";

const char *pv_impair_key_name(enum pv_imp_key key)
{
	return keys[key].name;
}

int pv_impair_key_find(const char *name)
{
	for (int k = 0; k < PV_IMP_NKEYS; k++)
		if (!strcmp(keys[k].name, name))
			return k;
	return -1;
}

bool pv_impair_key_netem(enum pv_imp_key key)
{
	return keys[key].netem;
}

static int range_err(enum pv_imp_key key, const char *text, struct pv_err *err)
{
	const char *t = text ? text : "";
	switch (keys[key].unit) {
	case U_MS:
		return pv_err_set(err, EINVAL,
				  "%s takes whole milliseconds from 0 to %u (0 = off), not `%.24s`",
				  keys[key].name, PV_IMP_MS_MAX, t);
	case U_PPM:
		return pv_err_set(err, EINVAL,
				  "%s takes a percentage from 0 to 100 with up to 4 decimals, e.g. 0.5 (0 = off), not `%.24s`",
				  keys[key].name, t);
	default:
		return pv_err_set(err, EINVAL,
				  "%s takes bits per second, 0 (off) or %llu to %llu (k/M/G suffixes allowed), not `%.24s`",
				  keys[key].name, PV_IMP_BPS_MIN, PV_IMP_BPS_MAX, t);
	}
}

int pv_impair_value_check(enum pv_imp_key key, uint64_t v, struct pv_err *err)
{
	bool ok;
	switch (keys[key].unit) {
	case U_MS: ok = v <= PV_IMP_MS_MAX; break;
	case U_PPM: ok = v <= PV_IMP_PPM_MAX; break;
	default: ok = v == 0 || (v >= PV_IMP_BPS_MIN && v <= PV_IMP_BPS_MAX); break;
	}
	if (ok)
		return 0;
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return range_err(key, buf, err);
}

/* Digits only, at most 13 of them (no overflow below 10^13). */
static bool digits(const char *s, size_t n)
{
	if (n == 0 || n > 13)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* "12.3456" -> 123456 (percent * 10^4 = ppm). */
static bool parse_pct(const char *t, uint64_t *out)
{
	const char *dot = strchr(t, '.');
	size_t ilen = dot ? (size_t)(dot - t) : strlen(t);
	if (!digits(t, ilen))
		return false;
	uint64_t v = strtoull(t, NULL, 10) * 10000;
	if (dot) {
		size_t flen = strlen(dot + 1);
		if (flen == 0 || flen > 4 || !digits(dot + 1, flen))
			return false;
		uint64_t f = strtoull(dot + 1, NULL, 10);
		for (size_t i = flen; i < 4; i++)
			f *= 10;
		v += f;
	}
	*out = v;
	return true;
}

static bool parse_bps(const char *t, uint64_t *out)
{
	size_t n = strlen(t);
	uint64_t mul = 1;
	if (n > 1) {
		switch (t[n - 1]) {
		case 'k': case 'K': mul = 1000; n--; break;
		case 'M': mul = 1000000; n--; break;
		case 'G': mul = 1000000000; n--; break;
		default: break;
		}
	}
	if (!digits(t, n))
		return false;
	uint64_t v = strtoull(t, NULL, 10);
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

int pv_impair_parse_value(enum pv_imp_key key, const char *text, uint64_t *out,
			  struct pv_err *err)
{
	char buf[64];
	size_t n = strnlen(text, sizeof(buf) - 1);
	memcpy(buf, text, n);
	buf[n] = '\0';
	char *t = pv_trim(buf);
	uint64_t v = 0;
	bool ok;
	switch (keys[key].unit) {
	case U_MS: ok = digits(t, strlen(t)) && (v = strtoull(t, NULL, 10), true); break;
	case U_PPM: ok = parse_pct(t, &v); break;
	default: ok = parse_bps(t, &v); break;
	}
	if (!ok || pv_impair_value_check(key, v, NULL) != 0)
		return range_err(key, t, err);
	*out = v;
	return 0;
}

void pv_impair_format_value(enum pv_imp_key key, uint64_t v, char *buf, size_t len)
{
	if (keys[key].unit != U_PPM || v % 10000 == 0) {
		snprintf(buf, len, "%" PRIu64, keys[key].unit == U_PPM ? v / 10000 : v);
		return;
	}
	char frac[8];
	snprintf(frac, sizeof(frac), "%04" PRIu64, v % 10000);
	for (size_t i = strlen(frac); i > 0 && frac[i - 1] == '0'; i--)
		frac[i - 1] = '\0';
	snprintf(buf, len, "%" PRIu64 ".%s", v / 10000, frac);
}

static const char line_usage[] =
	"write `a -> b key=value ...` (keys: %s) or `a -> b clear`, one pair a line";

int pv_impair_parse_line(char *line, struct pv_impair_line *out, struct pv_err *err)
{
	char *w[3 + PV_IMP_NKEYS + 1];
	size_t n;
	memset(out, 0, sizeof(*out));
	if (pv_split_words(line, w, sizeof(w) / sizeof(w[0]), &n, NULL) || n < 4 ||
	    strcmp(w[1], "->"))
		return pv_err_set(err, EINVAL, line_usage, key_list);
	out->from = w[0];
	out->to = w[2];
	if (n == 4 && !strcmp(w[3], "clear")) {
		out->clear = true;
		return 0;
	}
	for (size_t i = 3; i < n; i++) {
		char *eq = strchr(w[i], '=');
		if (!eq)
			return pv_err_set(err, EINVAL, "`%.40s` is not key=value: use keys %s",
					  w[i], key_list);
		*eq = '\0';
		int k = pv_impair_key_find(w[i]);
		if (k < 0)
			return pv_err_set(err, EINVAL, "unknown key `%.40s`: use %s", w[i], key_list);
		if (out->change.mask & (1u << k))
			return pv_err_set(err, EINVAL, "%s is given twice in one line: give it once",
					  w[i]);
		int rc = pv_impair_parse_value(k, eq + 1, &out->change.val.v[k], err);
		if (rc)
			return rc;
		out->change.mask |= 1u << k;
	}
	return 0;
}

void pv_impair_render_pair(FILE *f, const struct pv_pair_impair *p)
{
	fprintf(f, "%s -> %s", p->from, p->to);
	for (int k = 0; k < PV_IMP_NKEYS; k++) {
		if (!p->im.v[k])
			continue;
		char v[32];
		pv_impair_format_value(k, p->im.v[k], v, sizeof(v));
		fprintf(f, " %s=%s", keys[k].name, v);
	}
	fputc('\n', f);
}

bool pv_impair_change_needs_netem(const struct pv_impair_change *c)
{
	for (int k = 0; k < PV_IMP_NKEYS; k++)
		if ((c->mask & (1u << k)) && keys[k].netem && c->val.v[k])
			return true;
	return false;
}

struct pv_shape pv_impair_shape(const struct pv_impair *im)
{
	const uint64_t *v = im->v;
	struct pv_shape s = {
		.rate_bps = v[PV_IMP_BANDWIDTH],
		.netem = {
			.latency_us = (uint32_t)(v[PV_IMP_LATENCY] * 1000),
			.jitter_us = (uint32_t)(v[PV_IMP_JITTER] * 1000),
			.loss_ppm = (uint32_t)v[PV_IMP_DROP],
			.loss_corr_ppm = (uint32_t)v[PV_IMP_DROP_CORR],
			.duplicate_ppm = (uint32_t)v[PV_IMP_DUPLICATE],
			.corrupt_ppm = (uint32_t)v[PV_IMP_CORRUPT],
			.reorder_ppm = (uint32_t)v[PV_IMP_REORDER],
		},
	};
	return s;
}
