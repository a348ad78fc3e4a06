/* Unit tests of the `run` request parser and the result JSON (no kernel). */
/* cmocka.h needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "netcore/runreq.h"

static int parse(const char *text, struct pv_run_req *req, struct pv_err *err)
{
	pv_err_clear(err);
	return pv_run_req_parse(text, strlen(text), req, err);
}

static void test_plain(void **state)
{
	(void)state;
	struct pv_run_req req;
	struct pv_err err;
	assert_int_equal(parse("echo hi | tr a-z A-Z\n", &req, &err), 0);
	assert_string_equal(req.cmd, "echo hi | tr a-z A-Z");
	assert_null(req.argv);
	assert_null(req.env);
	assert_null(req.cwd);
	assert_null(req.stdin_data);
	assert_true(req.timeout == PV_RUN_DEFAULT_TIMEOUT);
	pv_run_req_free(&req);

	/* a line that merely contains braces is still a shell line */
	assert_int_equal(parse("echo {a,b}\r\n\n", &req, &err), 0);
	assert_string_equal(req.cmd, "echo {a,b}");
	pv_run_req_free(&req);
}

static void test_json_cmd(void **state)
{
	(void)state;
	struct pv_run_req req;
	struct pv_err err;
	assert_int_equal(
	    parse("{\"cmd\": \"ls -l /\", \"cwd\": \"/tmp\", \"timeout\": 2.5}\n", &req, &err), 0);
	assert_string_equal(req.cmd, "ls -l /");
	assert_string_equal(req.cwd, "/tmp");
	assert_true(req.timeout == 2.5);
	pv_run_req_free(&req);

	/* integer timeout, capped at a day */
	assert_int_equal(parse("{\"cmd\": \"true\", \"timeout\": 1000000}", &req, &err), 0);
	assert_true(req.timeout == 86400.0);
	pv_run_req_free(&req);
	assert_int_equal(parse("  {\"cmd\": \"true\", \"timeout\": 3}  \n", &req, &err), 0);
	assert_true(req.timeout == 3.0);
	pv_run_req_free(&req);
}

static void test_json_argv_env_stdin(void **state)
{
	(void)state;
	struct pv_run_req req;
	struct pv_err err;
	const char *t = "{\"argv\": [\"ping\", \"-c1\", \"\", \"b.lan\"],"
			" \"env\": {\"LANG\": \"C\", \"X\": \"a=b\"},"
			" \"stdin\": \"line1\\nli\\u0000ne2\\\"\"}";
	assert_int_equal(parse(t, &req, &err), 0);
	assert_null(req.cmd);
	assert_non_null(req.argv);
	assert_string_equal(req.argv[0], "ping");
	assert_string_equal(req.argv[1], "-c1");
	assert_string_equal(req.argv[2], "");
	assert_string_equal(req.argv[3], "b.lan");
	assert_null(req.argv[4]);
	assert_string_equal(req.env[0], "LANG=C");
	assert_string_equal(req.env[1], "X=a=b");
	assert_null(req.env[2]);
	assert_int_equal(req.stdin_len, 13);
	assert_memory_equal(req.stdin_data, "line1\nli\0ne2\"", 13);
	pv_run_req_free(&req);
}

static void test_req_round_trip(void **state)
{
	(void)state;
	struct pv_run_req req, back;
	struct pv_err err;
	const char *t =
	    "{\"argv\": [\"sh\", \"-c\", \"echo \\\"$X\\\" /x\"], \"env\": {\"X\": \"1\"},"
	    " \"cwd\": \"/tmp\", \"stdin\": \"a\\u0000b\", \"timeout\": 0.25}";
	assert_int_equal(parse(t, &req, &err), 0);
	char *js = pv_run_req_to_json(&req);
	assert_non_null(js);
	assert_null(strstr(js, "\\/")); /* NOSLASHESCAPE */
	assert_int_equal(parse(js, &back, &err), 0);
	assert_string_equal(back.argv[2], "echo \"$X\" /x");
	assert_null(back.argv[3]);
	assert_string_equal(back.env[0], "X=1");
	assert_string_equal(back.cwd, "/tmp");
	assert_int_equal(back.stdin_len, 3);
	assert_memory_equal(back.stdin_data, "a\0b", 3);
	assert_true(back.timeout == 0.25);
	free(js);
	pv_run_req_free(&back);
	pv_run_req_free(&req);

	assert_int_equal(parse("uname -a", &req, &err), 0);
	js = pv_run_req_to_json(&req);
	assert_int_equal(parse(js, &back, &err), 0);
	assert_string_equal(back.cmd, "uname -a");
	assert_true(back.timeout == PV_RUN_DEFAULT_TIMEOUT);
	free(js);
	pv_run_req_free(&back);
	pv_run_req_free(&req);
}

/* Each bad input gets EINVAL and a one-line message containing `needle`. */
static void expect_bad(const char *text, size_t len, const char *needle)
{
	struct pv_run_req req;
	struct pv_err err;
	pv_err_clear(&err);
	int rc = pv_run_req_parse(text, len, &req, &err);
	if (rc != -EINVAL || !strstr(err.msg, needle) || strchr(err.msg, '\n'))
		fail_msg("input [%s]: rc %d, message [%s], wanted EINVAL and [%s]", text, rc,
			 err.msg, needle);
	assert_int_equal(err.code, EINVAL);
	assert_null(req.cmd);
	assert_null(req.argv);
}

static void bad(const char *text, const char *needle)
{
	expect_bad(text, strlen(text), needle);
}

static void test_bad_inputs(void **state)
{
	(void)state;
	bad("", "run: empty command: write a shell command or a JSON request");
	bad(" \n\t\n", "empty command");
	expect_bad("echo a\0b", 8, "NUL");
	bad("{\"cmd\": \"ls\"", "bad JSON");
	bad("{\"cmd\": \"ls\",}", "bad JSON");
	bad("{ echo a; echo b; }", "must be sent as {\"cmd\"");
	bad("{\"cmd\": \"ls\"} {}", "after the JSON");
	bad("{}", "add \"cmd\" or \"argv\"");
	bad("{\"cmd\": \"ls\", \"argv\": [\"ls\"]}", "keep only one");
	bad("{\"cmd\": \"ls\", \"args\": [\"-l\"]}",
	    "unknown key \"args\": use only cmd, argv, env, cwd, stdin, timeout");
	bad("{\"cmd\": 5}", "\"cmd\" must be a string");
	bad("{\"cmd\": \"  \"}", "\"cmd\" is empty");
	bad("{\"cmd\": \"a\\u0000b\"}", "NUL");
	bad("{\"argv\": []}", "non-empty array");
	bad("{\"argv\": \"ls -l\"}", "non-empty array");
	bad("{\"argv\": [\"ls\", 1]}", "\"argv\"[1] is not a string");
	bad("{\"argv\": [\"\"]}", "\"argv\"[0] is empty");
	bad("{\"cmd\": \"ls\", \"env\": [\"A=1\"]}", "\"env\" must be an object");
	bad("{\"cmd\": \"ls\", \"env\": {\"A\": 1}}", "env value of \"A\" must be a string");
	bad("{\"cmd\": \"ls\", \"env\": {\"A=B\": \"1\"}}", "env name \"A=B\"");
	bad("{\"cmd\": \"ls\", \"env\": {\"\": \"1\"}}", "env name");
	bad("{\"cmd\": \"ls\", \"cwd\": \"tmp\"}", "not absolute");
	bad("{\"cmd\": \"ls\", \"cwd\": 1}", "\"cwd\" must be a string");
	bad("{\"cmd\": \"ls\", \"stdin\": [1]}", "\"stdin\" must be a string");
	bad("{\"cmd\": \"ls\", \"timeout\": 0}", "not positive");
	bad("{\"cmd\": \"ls\", \"timeout\": -1.5}", "not positive");
	bad("{\"cmd\": \"ls\", \"timeout\": \"5s\"}", "must be a number of seconds");
}

/* "[" is not JSON for us: only "{" switches; check the shell-line reading. */
static void test_bracket_is_shell(void **state)
{
	(void)state;
	struct pv_run_req req;
	struct pv_err err;
	assert_int_equal(parse("[ -e /etc/hosts ]", &req, &err), 0);
	assert_string_equal(req.cmd, "[ -e /etc/hosts ]");
	pv_run_req_free(&req);
}

static void test_result_round_trip(void **state)
{
	(void)state;
	char out[] = "line \"one\"\n\ttab \\ back/slash\0nul \x01 end";
	char errs[] = "warn: é ü\n";
	struct pv_run_result r = {.exit_code = 3,
				  .status = PV_RUN_EXITED,
				  .signal = 0,
				  .out = out,
				  .out_len = sizeof(out) - 1,
				  .err = errs,
				  .err_len = strlen(errs)};
	char *js = pv_run_result_to_json(&r);
	assert_non_null(js);
	size_t n = strlen(js);
	assert_true(n > 0 && js[n - 1] == '\n');
	assert_null(memchr(js, '\n', n - 1)); /* one line */
	assert_non_null(strstr(js, "\"signal\":null"));
	assert_non_null(strstr(js, "\"status\":\"exited\""));
	assert_non_null(strstr(js, "back/slash"));

	struct pv_run_result back;
	struct pv_err err;
	assert_int_equal(pv_run_result_parse(js, &back, &err), 0);
	assert_int_equal(back.exit_code, 3);
	assert_int_equal(back.status, PV_RUN_EXITED);
	assert_int_equal(back.signal, 0);
	assert_int_equal(back.out_len, sizeof(out) - 1);
	assert_memory_equal(back.out, out, sizeof(out) - 1);
	assert_int_equal(back.err_len, strlen(errs));
	assert_string_equal(back.err, errs);
	pv_run_result_free(&back);
	free(js);

	struct pv_run_result s = {.exit_code = 128 + 15, .status = PV_RUN_SIGNALLED, .signal = 15};
	js = pv_run_result_to_json(&s);
	assert_string_equal(js, "{\"exit_code\":143,\"status\":\"signalled\",\"signal\":15,"
				"\"stdout\":\"\",\"stderr\":\"\"}\n");
	assert_int_equal(pv_run_result_parse(js, &back, &err), 0);
	assert_int_equal(back.status, PV_RUN_SIGNALLED);
	assert_int_equal(back.signal, 15);
	assert_int_equal(back.out_len, 0);
	assert_string_equal(back.out, "");
	pv_run_result_free(&back);
	free(js);

	struct pv_run_result t = {.exit_code = 137, .status = PV_RUN_TIMED_OUT, .signal = 9};
	js = pv_run_result_to_json(&t);
	assert_int_equal(pv_run_result_parse(js, &back, &err), 0);
	assert_int_equal(back.status, PV_RUN_TIMED_OUT);
	assert_int_equal(back.exit_code, 137);
	pv_run_result_free(&back);
	free(js);
}

/* Invalid UTF-8 from a command must still give valid JSON: bad bytes become
 * U+FFFD, valid multi-byte characters survive. */
static void test_result_binary(void **state)
{
	(void)state;
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	/* a valid 4-byte char, an overlong '/', a surrogate, a cut 3-byte char */
	const char mixed[] = "ok\xF0\x9F\x98\x80 \xC0\xAF \xED\xA0\x80 \xE2\x82";
	struct pv_run_result r = {.status = PV_RUN_EXITED,
				  .out = (char *)bin,
				  .out_len = sizeof(bin),
				  .err = (char *)mixed,
				  .err_len = sizeof(mixed) - 1};
	char *js = pv_run_result_to_json(&r);
	assert_non_null(js);

	/* a strict, UTF-8 validating parse accepts it */
	struct json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *obj = json_tokener_parse_ex(tok, js, (int)strlen(js) - 1);
	assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
	assert_non_null(obj);
	json_object_put(obj);
	json_tokener_free(tok);

	struct pv_run_result back;
	struct pv_err err;
	assert_int_equal(pv_run_result_parse(js, &back, &err), 0);
	/* 128 ASCII bytes kept, 128 high bytes each replaced by 3 bytes */
	assert_int_equal(back.out_len, 128 + 128 * 3);
	assert_memory_equal(back.out, bin, 128);
	assert_memory_equal(back.out + 128, "\xEF\xBF\xBD", 3);
	assert_string_equal(back.err,
			    "ok\xF0\x9F\x98\x80 \xEF\xBF\xBD\xEF\xBF\xBD "
			    "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
	pv_run_result_free(&back);
	free(js);
}

static void test_result_bad(void **state)
{
	(void)state;
	struct pv_run_result r;
	struct pv_err err;
	assert_int_equal(pv_run_result_parse("nope", &r, &err), -EINVAL);
	assert_int_equal(pv_run_result_parse("{\"status\":\"exited\"}", &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "exit_code"));
	assert_int_equal(pv_run_result_parse("{\"exit_code\":0,\"status\":\"done\"}", &r, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "status"));
	assert_int_equal(
	    pv_run_result_parse("{\"exit_code\":0,\"status\":\"exited\",\"stdout\":1}", &r, &err),
	    -EINVAL);
	assert_null(r.out);
	/* missing streams read as empty, unknown keys are ignored */
	assert_int_equal(
	    pv_run_result_parse("{\"exit_code\":0,\"status\":\"exited\",\"ms\":3}", &r, &err), 0);
	assert_int_equal(r.out_len, 0);
	assert_int_equal(r.err_len, 0);
	pv_run_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_json_cmd),
	    cmocka_unit_test(test_json_argv_env_stdin),
	    cmocka_unit_test(test_req_round_trip),
	    cmocka_unit_test(test_bad_inputs),
	    cmocka_unit_test(test_bracket_is_shell),
	    cmocka_unit_test(test_result_round_trip),
	    cmocka_unit_test(test_result_binary),
	    cmocka_unit_test(test_result_bad),
	};
	return cmocka_run_group_tests_name("runreq", tests, NULL, NULL);
}
