/* Parsers for what users write into lab files. They work on a private,
 * NUL-terminated copy and never touch the graph. */
#ifndef PV_PARSE_H
#define PV_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netcore/err.h"

#define PV_WRITE_MAX (64 * 1024)

/* Split `text` in place on blanks and newlines; at most `max` words. */
int pv_split_words(char *text, char **words, size_t max, size_t *n, struct pv_err *err);

/* Split `text` in place into non-empty lines (trimmed). */
int pv_split_lines(char *text, char **lines, size_t max, size_t *n);

enum pv_part_op_kind { PV_PART_PAIR, PV_PART_ALL, PV_PART_NONE };
struct pv_part_op {
	enum pv_part_op_kind kind;
	bool remove;      /* "-a b", "-a -> b" */
	bool directional; /* "a -> b" */
	char *a, *b;      /* point into the parsed line */
};

/* One line of `partition`: "a b", "a -> b", "-a b", "-a -> b", "all", "none". */
int pv_parse_partition(char *line, struct pv_part_op *op, struct pv_err *err);

/* "a" or "-a" (isolated file). */
int pv_parse_toggle(char *line, char **name, bool *remove, struct pv_err *err);

/* A whole unsigned decimal number in [min, max]; `what` names the file. */
int pv_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out, const char *what,
		 struct pv_err *err);

/* "up"/"down" (also 1/0). */
int pv_parse_updown(const char *text, bool *up, struct pv_err *err);

/* A size with an optional K/M/G suffix (binary), in MiB: "256M", "1G". */
int pv_parse_mib(const char *text, unsigned *mib, struct pv_err *err);

/* Trim trailing blanks/newlines in place; returns text. */
char *pv_trim(char *text);

#endif
