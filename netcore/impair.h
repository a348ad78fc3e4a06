/* Impairment values as users write them into bridge files: the keys, their
 * units and limits, the per-pair `impair` line, and the conversion to the
 * qdisc back-end's shape (docs/impairments.md). Nothing here touches the
 * graph or the kernel. */
#ifndef PV_IMPAIR_H
#define PV_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "netcore/err.h"
#include "netcore/graph.h"
#include "netcore/qdisc.h"

/* Limits. Latency and jitter above a minute are a mistake, not a test. */
#define PV_IMP_MS_MAX 60000u
#define PV_IMP_PPM_MAX 1000000u                 /* 100% */
#define PV_IMP_BPS_MIN 8000ull                  /* HTB's floor (qdisc.c) */
#define PV_IMP_BPS_MAX 1000000000000ull         /* 1 Tbit/s: 64-bit rates */

/* The file / key name of `key` ("latency_ms"). */
const char *pv_impair_key_name(enum pv_imp_key key);
/* The key named `name`, or -1. */
int pv_impair_key_find(const char *name);
/* True for keys that need sch_netem (everything but bandwidth). */
bool pv_impair_key_netem(enum pv_imp_key key);

/* Parse one value of `key` as written ("50", "0.5", "10M"): ms keys take
 * whole milliseconds, *_pct keys a percentage with up to 4 decimals (stored
 * in ppm), bandwidth_bps bits per second (optional k/M/G, powers of 1000).
 * EINVAL with a message naming the key and the accepted range. */
int pv_impair_parse_value(enum pv_imp_key key, const char *text, uint64_t *out,
			  struct pv_err *err);

/* Whether `v` is in range for `key` (what parse accepts). */
int pv_impair_value_check(enum pv_imp_key key, uint64_t v, struct pv_err *err);

/* Format a value as it reads back: "50", "0.5", "500000". */
void pv_impair_format_value(enum pv_imp_key key, uint64_t v, char *buf, size_t len);

/* One line of the `impair` file: "a -> b key=value ..." or "a -> b clear". */
struct pv_impair_line {
	char *from, *to; /* point into the parsed line */
	bool clear;
	struct pv_impair_change change;
};
int pv_impair_parse_line(char *line, struct pv_impair_line *out, struct pv_err *err);

/* "a -> b latency_ms=50 drop_pct=1\n": only the keys the pair sets. */
void pv_impair_render_pair(FILE *f, const struct pv_pair_impair *p);

/* True if applying `c` would set a key that needs sch_netem to non-zero. */
bool pv_impair_change_needs_netem(const struct pv_impair_change *c);

/* The qdisc shape of an impairment (ms -> us, ppm, bit/s). */
struct pv_shape pv_impair_shape(const struct pv_impair *im);

#endif
