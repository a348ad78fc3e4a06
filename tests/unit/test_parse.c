/* Unit tests of the lab-file parsers (netcore/parse.h). No kernel. */
/* cmocka.h needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "netcore/parse.h"

/* Every failure leaves a non-empty, one-line message and the errno. */
static void assert_err(const struct pv_err *e, int code)
{
	assert_int_equal(e->code, code);
	assert_true(e->msg[0] != '\0');
	assert_null(strchr(e->msg, '\n'));
}

/* ---- pv_split_words / pv_split_lines ---- */

static void test_split_words(void **state)
{
	(void)state;
	char text[] = "  a\tbb\r\nccc  \n";
	char *w[4];
	size_t n = 99;
	struct pv_err err;
	pv_err_clear(&err);
	assert_int_equal(pv_split_words(text, w, 4, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(w[0], "a");
	assert_string_equal(w[1], "bb");
	assert_string_equal(w[2], "ccc");
	assert_int_equal(err.code, 0);

	char empty[] = " \t\n ";
	assert_int_equal(pv_split_words(empty, w, 4, &n, &err), 0);
	assert_int_equal(n, 0);

	char exact[] = "a b c d";
	assert_int_equal(pv_split_words(exact, w, 4, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(w[3], "d");
}

static void test_split_words_too_many(void **state)
{
	(void)state;
	char text[] = "a b c d e";
	char *w[4];
	size_t n;
	struct pv_err err;
	pv_err_clear(&err);
	assert_int_equal(pv_split_words(text, w, 4, &n, &err), -EINVAL);
	assert_err(&err, EINVAL);
	assert_non_null(strstr(err.msg, "4"));
	/* a NULL err is allowed: pv_err_set tolerates it */
	char again[] = "a b c d e";
	assert_int_equal(pv_split_words(again, w, 4, &n, NULL), -EINVAL);
}

static void test_split_lines(void **state)
{
	(void)state;
	char text[] = "a\n\n   b c  \r\n\t\n  d\n";
	char *l[4];
	size_t n = 99;
	assert_int_equal(pv_split_lines(text, l, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b c");
	assert_string_equal(l[2], "d");

	char blank[] = "\n \n\t\r\n";
	assert_int_equal(pv_split_lines(blank, l, 4, &n), 0);
	assert_int_equal(n, 0);

	char none[] = "";
	assert_int_equal(pv_split_lines(none, l, 4, &n), 0);
	assert_int_equal(n, 0);

	char nonl[] = "only";
	assert_int_equal(pv_split_lines(nonl, l, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0], "only");
}

static void test_split_lines_too_many(void **state)
{
	(void)state;
	char text[] = "a\nb\nc\n";
	char *l[2];
	size_t n;
	assert_int_equal(pv_split_lines(text, l, 2, &n), -E2BIG);
	/* blank lines do not count against the limit */
	char ok[] = "a\n\n\n\nb\n\n";
	assert_int_equal(pv_split_lines(ok, l, 2, &n), 0);
	assert_int_equal(n, 2);
}

static void test_trim(void **state)
{
	(void)state;
	char a[] = " \t x y \r\n";
	assert_string_equal(pv_trim(a), "x y");
	char b[] = "\n\n";
	assert_string_equal(pv_trim(b), "");
	char c[] = "z";
	assert_string_equal(pv_trim(c), "z");
}

/* ---- pv_parse_partition ---- */

static int part(const char *line, struct pv_part_op *op, char *buf, size_t len,
		struct pv_err *err)
{
	snprintf(buf, len, "%s", line);
	pv_err_clear(err);
	return pv_parse_partition(buf, op, err);
}

static void expect_pair(const char *line, bool remove, bool directional, const char *a,
			const char *b)
{
	char buf[128];
	struct pv_part_op op;
	struct pv_err err;
	assert_int_equal(part(line, &op, buf, sizeof(buf), &err), 0);
	assert_int_equal(op.kind, PV_PART_PAIR);
	assert_int_equal(op.remove, remove);
	assert_int_equal(op.directional, directional);
	assert_string_equal(op.a, a);
	assert_string_equal(op.b, b);
	assert_int_equal(err.code, 0);
}

static void expect_part_bad(const char *line)
{
	char buf[128];
	struct pv_part_op op;
	struct pv_err err;
	int rc = part(line, &op, buf, sizeof(buf), &err);
	if (rc != -EINVAL)
		fail_msg("partition line `%s` gave %d, expected -EINVAL", line, rc);
	assert_err(&err, EINVAL);
	/* the message tells the user which forms exist */
	assert_non_null(strstr(err.msg, "->"));
}

static void test_partition_forms(void **state)
{
	(void)state;
	expect_pair("a b", false, false, "a", "b");
	expect_pair("  a\tb \n", false, false, "a", "b");
	expect_pair("a -> b", false, true, "a", "b");
	expect_pair("-a b", true, false, "a", "b");
	expect_pair("-a -> b", true, true, "a", "b");
	expect_pair("node-1 node_2", false, false, "node-1", "node_2");
}

static void test_partition_all_none(void **state)
{
	(void)state;
	char buf[32];
	struct pv_part_op op;
	struct pv_err err;
	assert_int_equal(part("all", &op, buf, sizeof(buf), &err), 0);
	assert_int_equal(op.kind, PV_PART_ALL);
	assert_false(op.remove);
	assert_null(op.a);
	assert_null(op.b);
	assert_int_equal(part(" none\n", &op, buf, sizeof(buf), &err), 0);
	assert_int_equal(op.kind, PV_PART_NONE);
	assert_false(op.remove);
	/* "all" as one of two words is a node called all */
	expect_pair("all b", false, false, "all", "b");
}

static void test_partition_garbage(void **state)
{
	(void)state;
	expect_part_bad("");
	expect_part_bad("   \n");
	expect_part_bad("a");
	expect_part_bad("-a");
	expect_part_bad("-all");
	expect_part_bad("a b c");      /* three words without an arrow */
	expect_part_bad("a => b");
	expect_part_bad("a b c d");    /* four words */
	expect_part_bad("a -> b c d"); /* more words than the split keeps */
	expect_part_bad("a -> b -> c");
}

/* An arrow in the wrong place or a lone '-' must not turn into a node name:
 * `a ->` would otherwise partition `a` from a node called "->". */
static void test_partition_dangling_arrow(void **state)
{
	(void)state;
	expect_part_bad("a ->");
	expect_part_bad("-> b");
	expect_part_bad("-a ->");
	expect_part_bad("->");
	expect_part_bad("-> ->");
	expect_part_bad("- b");
	expect_part_bad("- -> b");
	expect_part_bad("a -> ->");
}

/* ---- pv_parse_toggle ---- */

static void test_toggle(void **state)
{
	(void)state;
	char *name;
	bool remove = true;
	struct pv_err err;
	pv_err_clear(&err);
	char a[] = "a";
	assert_int_equal(pv_parse_toggle(a, &name, &remove, &err), 0);
	assert_string_equal(name, "a");
	assert_false(remove);
	char b[] = " -node-1 \n";
	assert_int_equal(pv_parse_toggle(b, &name, &remove, &err), 0);
	assert_string_equal(name, "node-1");
	assert_true(remove);
}

static void test_toggle_bad(void **state)
{
	(void)state;
	const char *bad[] = {"", " \n", "a b", "-a b", "a b c", "-"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char buf[16], *name;
		bool remove;
		struct pv_err err;
		pv_err_clear(&err);
		snprintf(buf, sizeof(buf), "%s", bad[i]);
		int rc = pv_parse_toggle(buf, &name, &remove, &err);
		if (rc != -EINVAL)
			fail_msg("toggle line `%s` gave %d, expected -EINVAL", bad[i], rc);
		assert_err(&err, EINVAL);
	}
}

/* ---- pv_parse_u64 ---- */

static void expect_u64(const char *text, uint64_t min, uint64_t max, uint64_t want)
{
	uint64_t v = 12345;
	struct pv_err err;
	pv_err_clear(&err);
	int rc = pv_parse_u64(text, min, max, &v, "rate", &err);
	if (rc)
		fail_msg("`%s` gave %d (%s)", text, rc, err.msg);
	assert_true(v == want);
}

static void expect_u64_bad(const char *text, uint64_t min, uint64_t max, int code)
{
	uint64_t v = 12345;
	struct pv_err err;
	pv_err_clear(&err);
	int rc = pv_parse_u64(text, min, max, &v, "rate", &err);
	if (rc != -code)
		fail_msg("`%s` gave %d, expected %d", text, rc, -code);
	assert_err(&err, code);
	assert_true(v == 12345); /* untouched on failure */
	/* the message names the file and the range */
	assert_non_null(strstr(err.msg, "rate"));
	char range[64];
	snprintf(range, sizeof(range), "%llu", (unsigned long long)max);
	assert_non_null(strstr(err.msg, range));
}

static void test_u64(void **state)
{
	(void)state;
	expect_u64("5", 1, 10, 5);
	expect_u64("1", 1, 10, 1);
	expect_u64("10", 1, 10, 10);
	expect_u64("0", 0, 0, 0);
	expect_u64("007", 0, 10, 7);
	expect_u64("  7\n", 0, 10, 7);
	expect_u64("7 \t\r\n", 0, 10, 7);
	expect_u64("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
}

static void test_u64_bounds(void **state)
{
	(void)state;
	expect_u64_bad("0", 1, 10, ERANGE);
	expect_u64_bad("11", 1, 10, ERANGE);
	expect_u64_bad("4294967296", 0, 4294967295u, ERANGE);
	/* overflow of 64 bits is out of range, not a wrapped value */
	expect_u64_bad("18446744073709551616", 0, UINT64_MAX, ERANGE);
	expect_u64_bad("99999999999999999999999999", 0, UINT64_MAX, ERANGE);
}

static void test_u64_garbage(void **state)
{
	(void)state;
	expect_u64_bad("", 0, 10, EINVAL);
	expect_u64_bad("  \n", 0, 10, EINVAL);
	expect_u64_bad("abc", 0, 10, EINVAL);
	expect_u64_bad("-1", 0, 10, EINVAL);
	expect_u64_bad("-0", 0, 10, EINVAL);
	expect_u64_bad("+5", 0, 10, EINVAL);
	expect_u64_bad("5x", 0, 10, EINVAL);
	expect_u64_bad("5 6", 0, 10, EINVAL);
	expect_u64_bad("0x5", 0, 10, EINVAL);
	expect_u64_bad("5.0", 0, 10, EINVAL);
	expect_u64_bad("1e3", 0, 10000, EINVAL);
}

/* ---- pv_parse_updown ---- */

static void test_updown(void **state)
{
	(void)state;
	struct pv_err err;
	pv_err_clear(&err);
	const char *ups[] = {"up", "up\n", " up ", "1", "1\n"};
	const char *downs[] = {"down", "down\n", "\tdown\r\n", "0", "0\n"};
	for (size_t i = 0; i < 5; i++) {
		bool up = false;
		assert_int_equal(pv_parse_updown(ups[i], &up, &err), 0);
		assert_true(up);
		up = true;
		assert_int_equal(pv_parse_updown(downs[i], &up, &err), 0);
		assert_false(up);
	}
}

static void test_updown_bad(void **state)
{
	(void)state;
	/* the last one hides garbage past the parser's small buffer */
	const char *bad[] = {"", "\n", "UP", "Down", "upx", "up down", "2", "-1", "u",
			     "up              garbage", "down                       x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		bool up = true;
		struct pv_err err;
		pv_err_clear(&err);
		int rc = pv_parse_updown(bad[i], &up, &err);
		if (rc != -EINVAL)
			fail_msg("link `%s` gave %d, expected -EINVAL", bad[i], rc);
		assert_err(&err, EINVAL);
		assert_true(up); /* untouched */
	}
}

/* ---- pv_parse_mib ---- */

static void expect_mib(const char *text, unsigned want)
{
	unsigned mib = 0;
	struct pv_err err;
	pv_err_clear(&err);
	int rc = pv_parse_mib(text, &mib, &err);
	if (rc)
		fail_msg("memory `%s` gave %d (%s)", text, rc, err.msg);
	if (mib != want)
		fail_msg("memory `%s` gave %u MiB, expected %u", text, mib, want);
}

static void expect_mib_bad(const char *text)
{
	unsigned mib = 777;
	struct pv_err err;
	pv_err_clear(&err);
	int rc = pv_parse_mib(text, &mib, &err);
	if (rc != -EINVAL)
		fail_msg("memory `%s` gave %d (%u MiB), expected -EINVAL", text, rc, mib);
	assert_err(&err, EINVAL);
	assert_int_equal(mib, 777);
}

static void test_mib(void **state)
{
	(void)state;
	expect_mib("256", 256); /* plain numbers are MiB */
	expect_mib("256M", 256);
	expect_mib("256m", 256);
	expect_mib("256MB", 256);
	expect_mib("256MiB", 256);
	expect_mib("256mib", 256);
	expect_mib("1G", 1024);
	expect_mib("2g", 2048);
	expect_mib("1GiB", 1024);
	expect_mib("16384K", 16);
	expect_mib("16385K", 17); /* K rounds up to whole MiB */
	expect_mib("16M", 16);
	expect_mib("1024G", 1024 * 1024); /* 1T, the largest */
	expect_mib("1048576", 1024 * 1024);
}

static void test_mib_bad(void **state)
{
	(void)state;
	expect_mib_bad("");
	expect_mib_bad("0");
	expect_mib_bad("0G");
	expect_mib_bad("-1");
	expect_mib_bad("+1G");
	expect_mib_bad("abc");
	expect_mib_bad("M");
	expect_mib_bad("1T");
	expect_mib_bad("1X");
	expect_mib_bad("256Mx");
	expect_mib_bad("256 M");
	expect_mib_bad("256MiBB");
	expect_mib_bad("1.5G");
	expect_mib_bad("1025G");
	expect_mib_bad("1048577");
	expect_mib_bad("99999999999999999999999G");
}

/* The message promises 16M to 1T; huge values must not wrap into range. */
static void test_mib_limits(void **state)
{
	(void)state;
	expect_mib_bad("15M");
	expect_mib_bad("1");
	expect_mib_bad("1K");
	expect_mib_bad("15360K"); /* exactly 15M */
	expect_mib("15361K", 16);  /* rounds up into range */
	/* 2^54 G is 2^64 MiB: wraps to 0 in 64 bits */
	expect_mib_bad("18014398509481984G");
	/* 2^54 + 1 G wraps to 1024 MiB */
	expect_mib_bad("18014398509481985G");
	expect_mib_bad("18446744073709551615");
	expect_mib_bad("18446744073709551615K");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_split_words_too_many),
		cmocka_unit_test(test_split_lines),
		cmocka_unit_test(test_split_lines_too_many),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_partition_forms),
		cmocka_unit_test(test_partition_all_none),
		cmocka_unit_test(test_partition_garbage),
		cmocka_unit_test(test_partition_dangling_arrow),
		cmocka_unit_test(test_toggle),
		cmocka_unit_test(test_toggle_bad),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_u64_bounds),
		cmocka_unit_test(test_u64_garbage),
		cmocka_unit_test(test_updown),
		cmocka_unit_test(test_updown_bad),
		cmocka_unit_test(test_mib),
		cmocka_unit_test(test_mib_bad),
		cmocka_unit_test(test_mib_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
