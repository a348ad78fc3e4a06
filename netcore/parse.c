#include "netcore/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *pv_trim(char *text)
{
	while (*text && isspace((unsigned char)*text))
		text++;
	size_t n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		text[--n] = '\0';
	return text;
}

int pv_split_words(char *text, char **words, size_t max, size_t *n, struct pv_err *err)
{
	*n = 0;
	for (char *save = NULL, *w = strtok_r(text, " \t\r\n", &save); w;
	     w = strtok_r(NULL, " \t\r\n", &save)) {
		if (*n == max)
			return pv_err_set(err, EINVAL, "too many names (more than %zu): write fewer",
					  max);
		words[(*n)++] = w;
	}
	return 0;
}

int pv_split_lines(char *text, char **lines, size_t max, size_t *n)
{
	*n = 0;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		l = pv_trim(l);
		if (!*l)
			continue;
		if (*n == max)
			return -E2BIG;
		lines[(*n)++] = l;
	}
	return 0;
}

static const char part_usage[] =
	"write `a b` (symmetric), `a -> b` (directional), `-a b` or `-a -> b` (lift), `all` or `none`";

int pv_parse_partition(char *line, struct pv_part_op *op, struct pv_err *err)
{
	char *w[4];
	size_t n;
	memset(op, 0, sizeof(*op));
	if (pv_split_words(line, w, 4, &n, err) || n == 0)
		return pv_err_set(err, EINVAL, "cannot parse partition: %s", part_usage);
	if (n == 1 && (!strcmp(w[0], "all") || !strcmp(w[0], "none"))) {
		op->kind = !strcmp(w[0], "all") ? PV_PART_ALL : PV_PART_NONE;
		return 0;
	}
	op->kind = PV_PART_PAIR;
	if (w[0][0] == '-') {
		op->remove = true;
		w[0]++;
	}
	if (n == 2) {
		op->a = w[0];
		op->b = w[1];
	} else if (n == 3 && !strcmp(w[1], "->")) {
		op->directional = true;
		op->a = w[0];
		op->b = w[2];
	} else {
		return pv_err_set(err, EINVAL, "cannot parse partition: %s", part_usage);
	}
	/* a misplaced arrow ("a ->", "-> b") or a lone "-" is not a node name */
	if (!*op->a || !strcmp(op->a, ">") || !strcmp(op->a, "->") || !strcmp(op->b, "->"))
		return pv_err_set(err, EINVAL, "cannot parse partition: %s", part_usage);
	return 0;
}

int pv_parse_toggle(char *line, char **name, bool *remove, struct pv_err *err)
{
	char *w[2];
	size_t n;
	if (pv_split_words(line, w, 2, &n, err) || n != 1)
		return pv_err_set(err, EINVAL, "write one node name `a` (to add) or `-a` (to remove)");
	*remove = w[0][0] == '-';
	*name = w[0] + (*remove ? 1 : 0);
	if (!**name) /* a lone "-" names nothing */
		return pv_err_set(err, EINVAL, "write one node name `a` (to add) or `-a` (to remove)");
	return 0;
}

int pv_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out, const char *what,
		 struct pv_err *err)
{
	const char *p = text;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return pv_err_set(err, EINVAL, "%s takes a whole number from %llu to %llu", what,
				  (unsigned long long)min, (unsigned long long)max);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return pv_err_set(err, EINVAL, "%s takes a whole number from %llu to %llu", what,
				  (unsigned long long)min, (unsigned long long)max);
	if (errno == ERANGE || v < min || v > max)
		return pv_err_set(err, ERANGE, "%s is out of range: write a number from %llu to %llu",
				  what, (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

int pv_parse_updown(const char *text, bool *up, struct pv_err *err)
{
	/* one word between blanks; no fixed buffer, so nothing past it is ignored */
	while (isspace((unsigned char)*text))
		text++;
	size_t n = 0;
	while (text[n] && !isspace((unsigned char)text[n]))
		n++;
	const char *rest = text + n;
	while (isspace((unsigned char)*rest))
		rest++;
	bool is_up = (n == 2 && !strncmp(text, "up", 2)) || (n == 1 && *text == '1');
	bool is_down = (n == 4 && !strncmp(text, "down", 4)) || (n == 1 && *text == '0');
	if (*rest || (!is_up && !is_down))
		return pv_err_set(err, EINVAL, "link takes `up` or `down`");
	*up = is_up;
	return 0;
}

int pv_parse_mib(const char *text, unsigned *mib, struct pv_err *err)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*text))
		goto bad;
	unsigned long long v = strtoull(text, &end, 10);
	unsigned long long mul;
	switch (toupper((unsigned char)*end)) {
	case '\0': mul = 1; break; /* plain numbers are MiB */
	case 'K': v = v / 1024 + (v % 1024 != 0); mul = 1; end++; break; /* no wrap near 2^64 */
	case 'M': mul = 1; end++; break;
	case 'G': mul = 1024; end++; break;
	default: goto bad;
	}
	if (toupper((unsigned char)*end) == 'I' && toupper((unsigned char)end[1]) == 'B')
		end += 2;
	else if (toupper((unsigned char)*end) == 'B')
		end++;
	/* divide rather than multiply: v * mul wraps for huge v (2^54 G is 0) */
	if (*end || errno || v > 1024ULL * 1024 / mul || v * mul < 16)
		goto bad;
	*mib = (unsigned)(v * mul);
	return 0;
bad:
	return pv_err_set(err, EINVAL, "memory `%.20s` is not a size: write e.g. 256M or 1G (16M to 1T)",
			  text);
}
