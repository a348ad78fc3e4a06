#include "netcore/runreq.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define RUN_MAX_TIMEOUT 86400.0
#define RUN_KEYS "cmd, argv, env, cwd, stdin, timeout"
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- small helpers ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static char *dup_len(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

void pv_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF count as invalid,
 * as in RFC 3629). */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

/* JSON text must be UTF-8, and json-c copies string bytes through unchecked:
 * raw command output (binary, Latin-1, cut in the middle of a character)
 * would make the whole result unparsable. So every byte that does not start
 * a valid UTF-8 sequence is replaced by U+FFFD (EF BF BD); valid text,
 * including NUL bytes (json-c writes \u0000), passes unchanged. */
static struct json_object *json_string_utf8(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len && (n = utf8_seq_len(u + i, len - i)) != 0)
		i += n;
	if (i == len)
		return json_object_new_string_len(s, (int)len);

	char *buf = malloc(len * 3 + 1); /* each byte grows to 3 at most */
	if (!buf)
		return NULL;
	size_t o = 0;
	for (i = 0; i < len;) {
		n = utf8_seq_len(u + i, len - i);
		if (n) {
			memcpy(buf + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(buf + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	struct json_object *js = json_object_new_string_len(buf, (int)o);
	free(buf);
	return js;
}

/* Adds key -> val to obj; takes ownership of val; fails on NULL val. */
static int add(struct json_object *obj, const char *key, struct json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(obj, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

static char *render(struct json_object *obj, int newline)
{
	const char *s = json_object_to_json_string_ext(obj, JSON_FLAGS);
	char *out = NULL;
	if (s) {
		size_t n = strlen(s);
		out = malloc(n + 2);
		if (out) {
			memcpy(out, s, n);
			if (newline)
				out[n++] = '\n';
			out[n] = '\0';
		}
	}
	json_object_put(obj);
	return out;
}

/* ---- request parsing ---- */

static int parse_plain(const char *text, size_t len, struct pv_run_req *req, struct pv_err *err)
{
	if (memchr(text, '\0', len))
		return pv_err_set(err, EINVAL,
				  "run: command contains a NUL byte: write a shell command line, "
				  "or a JSON request with \"argv\"");
	req->cmd = dup_len(text, len);
	return req->cmd ? 0 : pv_err_set(err, ENOMEM, "run: out of memory");
}

/* A JSON string value as a C string; NUL bytes cannot go into argv/env/paths. */
static int get_cstr(struct json_object *v, const char *what, char **out, struct pv_err *err)
{
	if (!json_object_is_type(v, json_type_string))
		return pv_err_set(
		    err, EINVAL, "run: \"%s\" must be a string: write \"%s\": \"...\"", what, what);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (memchr(s, '\0', n))
		return pv_err_set(err, EINVAL,
				  "run: \"%s\" contains a NUL character: remove the \\u0000", what);
	*out = dup_len(s, n);
	return *out ? 0 : pv_err_set(err, ENOMEM, "run: out of memory");
}

static int parse_cmd(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	int rc = get_cstr(v, "cmd", &req->cmd, err);
	if (rc)
		return rc;
	for (const char *p = req->cmd; *p; p++)
		if (!is_space(*p))
			return 0;
	return pv_err_set(err, EINVAL, "run: \"cmd\" is empty: give a shell command line");
}

static int parse_argv(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
		return pv_err_set(err, EINVAL,
				  "run: \"argv\" must be a non-empty array of strings, like "
				  "[\"ping\", \"-c1\", \"b\"]");
	size_t n = json_object_array_length(v);
	req->argv = calloc(n + 1, sizeof(char *));
	if (!req->argv)
		return pv_err_set(err, ENOMEM, "run: out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		if (!json_object_is_type(a, json_type_string))
			return pv_err_set(
			    err, EINVAL, "run: \"argv\"[%zu] is not a string: quote every argument",
			    i);
		int rc = get_cstr(a, "argv", &req->argv[i], err);
		if (rc)
			return rc;
	}
	if (req->argv[0][0] == '\0')
		return pv_err_set(err, EINVAL,
				  "run: \"argv\"[0] is empty: name the program to run");
	return 0;
}

static int parse_env(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	if (!json_object_is_type(v, json_type_object))
		return pv_err_set(
		    err, EINVAL,
		    "run: \"env\" must be an object of strings, like {\"LANG\": \"C\"}");
	size_t n = (size_t)json_object_object_length(v), i = 0;
	req->env = calloc(n + 1, sizeof(char *));
	if (!req->env)
		return pv_err_set(err, ENOMEM, "run: out of memory");
	json_object_object_foreach(v, key, val)
	{
		if (key[0] == '\0' || strchr(key, '='))
			return pv_err_set(err, EINVAL,
					  "run: env name \"%s\" is not valid: use a name without "
					  "'=' (and not empty)",
					  key);
		if (!json_object_is_type(val, json_type_string))
			return pv_err_set(err, EINVAL,
					  "run: env value of \"%s\" must be a string: quote it",
					  key);
		char *value;
		int rc = get_cstr(val, "env", &value, err);
		if (rc)
			return rc;
		size_t kl = strlen(key), vl = strlen(value);
		req->env[i] = malloc(kl + vl + 2);
		if (!req->env[i]) {
			free(value);
			return pv_err_set(err, ENOMEM, "run: out of memory");
		}
		memcpy(req->env[i], key, kl);
		req->env[i][kl] = '=';
		memcpy(req->env[i] + kl + 1, value, vl + 1);
		free(value);
		i++;
	}
	return 0;
}

static int parse_cwd(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	int rc = get_cstr(v, "cwd", &req->cwd, err);
	if (rc)
		return rc;
	/* The command starts from the daemon's context: a relative path would
	 * mean nothing to the user. */
	if (req->cwd[0] != '/')
		return pv_err_set(
		    err, EINVAL, "run: \"cwd\" \"%s\" is not absolute: give a path starting with /",
		    req->cwd);
	return 0;
}

static int parse_stdin(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	if (!json_object_is_type(v, json_type_string))
		return pv_err_set(err, EINVAL,
				  "run: \"stdin\" must be a string: write \"stdin\": \"...\"");
	req->stdin_len = (size_t)json_object_get_string_len(v);
	req->stdin_data = dup_len(json_object_get_string(v), req->stdin_len);
	return req->stdin_data ? 0 : pv_err_set(err, ENOMEM, "run: out of memory");
}

static int parse_timeout(struct json_object *v, struct pv_run_req *req, struct pv_err *err)
{
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return pv_err_set(err, EINVAL,
				  "run: \"timeout\" must be a number of seconds, like 5 or 0.5");
	double t = json_object_get_double(v);
	if (!(t > 0) || isnan(t))
		return pv_err_set(err, EINVAL,
				  "run: \"timeout\" %g is not positive: give seconds > 0", t);
	req->timeout = t > RUN_MAX_TIMEOUT ? RUN_MAX_TIMEOUT : t;
	return 0;
}

static int parse_key(const char *key, struct json_object *v, struct pv_run_req *req,
		     struct pv_err *err)
{
	if (!strcmp(key, "cmd"))
		return parse_cmd(v, req, err);
	if (!strcmp(key, "argv"))
		return parse_argv(v, req, err);
	if (!strcmp(key, "env"))
		return parse_env(v, req, err);
	if (!strcmp(key, "cwd"))
		return parse_cwd(v, req, err);
	if (!strcmp(key, "stdin"))
		return parse_stdin(v, req, err);
	if (!strcmp(key, "timeout"))
		return parse_timeout(v, req, err);
	return pv_err_set(err, EINVAL, "run: unknown key \"%s\": use only " RUN_KEYS, key);
}

static int parse_json_obj(struct json_object *obj, struct pv_run_req *req, struct pv_err *err)
{
	if (!json_object_is_type(obj, json_type_object))
		return pv_err_set(err, EINVAL,
				  "run: a JSON request must be an object with \"cmd\" or \"argv\"");
	if (json_object_object_get_ex(obj, "cmd", NULL) &&
	    json_object_object_get_ex(obj, "argv", NULL))
		return pv_err_set(err, EINVAL,
				  "run: both \"cmd\" and \"argv\" given: keep only one");
	json_object_object_foreach(obj, key, val)
	{
		int rc = parse_key(key, val, req, err);
		if (rc)
			return rc;
	}
	if (!req->cmd && !req->argv)
		return pv_err_set(err, EINVAL,
				  "run: JSON request has no command: add \"cmd\" or \"argv\"");
	return 0;
}

static int parse_json(const char *text, size_t len, struct pv_run_req *req, struct pv_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return pv_err_set(err, ENOMEM, "run: out of memory");
	/* Strict: a typo such as a trailing comma is reported, not guessed at.
	 * UTF-8: the request is forwarded to the agent as JSON again. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
					JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	int rc;
	if (!obj || jerr != json_tokener_success)
		rc = pv_err_set(err, EINVAL,
				"run: bad JSON request (%s at byte %zu): fix the JSON (a shell "
				"line starting with { must be sent as {\"cmd\": \"...\"})",
				jerr == json_tokener_continue ? "unexpected end"
							      : json_tokener_error_desc(jerr),
				used);
	else if (used < len)
		rc = pv_err_set(
		    err, EINVAL,
		    "run: text after the JSON request at byte %zu: send one object per write",
		    used);
	else
		rc = parse_json_obj(obj, req, err);
	json_object_put(obj);
	return rc;
}

int pv_run_req_parse(const char *text, size_t len, struct pv_run_req *req, struct pv_err *err)
{
	memset(req, 0, sizeof(*req));
	req->timeout = PV_RUN_DEFAULT_TIMEOUT;
	while (len > 0 && is_space(text[len - 1]))
		len--;
	size_t start = 0;
	while (start < len && is_space(text[start]))
		start++;
	if (start == len)
		return pv_err_set(err, EINVAL,
				  "run: empty command: write a shell command or a JSON request");

	int rc = text[start] == '{' ? parse_json(text + start, len - start, req, err)
				    : parse_plain(text, len, req, err);
	if (rc)
		pv_run_req_free(req);
	return rc;
}

void pv_run_req_free(struct pv_run_req *req)
{
	if (!req)
		return;
	free(req->cmd);
	pv_strv_free(req->argv);
	pv_strv_free(req->env);
	free(req->cwd);
	free(req->stdin_data);
	memset(req, 0, sizeof(*req));
	req->timeout = PV_RUN_DEFAULT_TIMEOUT;
}

/* ---- request serialization ---- */

static int add_strv(struct json_object *obj, char **argv)
{
	struct json_object *arr = json_object_new_array();
	int rc = add(obj, "argv", arr);
	for (char **p = argv; !rc && *p; p++) {
		struct json_object *s = json_string_utf8(*p, strlen(*p));
		if (!s || json_object_array_add(arr, s) < 0) {
			json_object_put(s);
			rc = -ENOMEM;
		}
	}
	return rc;
}

static int add_env(struct json_object *obj, char **env)
{
	struct json_object *eo = json_object_new_object();
	int rc = add(obj, "env", eo);
	for (char **p = env; !rc && *p; p++) {
		const char *eq = strchr(*p, '=');
		if (!eq || eq == *p)
			continue; /* parse never makes these; skip rather than invent a name */
		char *key = dup_len(*p, (size_t)(eq - *p));
		rc = key ? add(eo, key, json_string_utf8(eq + 1, strlen(eq + 1))) : -ENOMEM;
		free(key);
	}
	return rc;
}

char *pv_run_req_to_json(const struct pv_run_req *req)
{
	struct json_object *obj = json_object_new_object();
	if (!obj)
		return NULL;
	int rc = 0;
	if (req->argv)
		rc = add_strv(obj, req->argv);
	else if (req->cmd)
		rc = add(obj, "cmd", json_string_utf8(req->cmd, strlen(req->cmd)));
	if (!rc && req->env)
		rc = add_env(obj, req->env);
	if (!rc && req->cwd)
		rc = add(obj, "cwd", json_string_utf8(req->cwd, strlen(req->cwd)));
	if (!rc && req->stdin_data)
		rc = add(obj, "stdin", json_string_utf8(req->stdin_data, req->stdin_len));
	if (!rc)
		rc = add(obj, "timeout", json_object_new_double(req->timeout));
	if (rc) {
		json_object_put(obj);
		return NULL;
	}
	return render(obj, 0);
}

/* ---- results ---- */

static const char *status_name(enum pv_run_status s)
{
	switch (s) {
	case PV_RUN_SIGNALLED:
		return "signalled";
	case PV_RUN_TIMED_OUT:
		return "timed_out";
	default:
		return "exited";
	}
}

char *pv_run_result_to_json(const struct pv_run_result *r)
{
	struct json_object *obj = json_object_new_object();
	if (!obj)
		return NULL;
	int rc = add(obj, "exit_code", json_object_new_int(r->exit_code));
	if (!rc)
		rc = add(obj, "status", json_object_new_string(status_name(r->status)));
	if (!rc && r->signal) {
		rc = add(obj, "signal", json_object_new_int(r->signal));
	} else if (!rc) {
		/* json-c stores a NULL value as JSON null */
		rc = json_object_object_add(obj, "signal", NULL) < 0 ? -ENOMEM : 0;
	}
	if (!rc)
		rc = add(obj, "stdout",
			 json_string_utf8(r->out ? r->out : "", r->out ? r->out_len : 0));
	if (!rc)
		rc = add(obj, "stderr",
			 json_string_utf8(r->err ? r->err : "", r->err ? r->err_len : 0));
	if (rc) {
		json_object_put(obj);
		return NULL;
	}
	return render(obj, 1);
}

static int result_str(struct json_object *obj, const char *key, char **out, size_t *len,
		      struct pv_err *err)
{
	struct json_object *v;
	const char *s = "";
	size_t n = 0;
	if (json_object_object_get_ex(obj, key, &v) && v) {
		if (!json_object_is_type(v, json_type_string))
			return pv_err_set(
			    err, EINVAL,
			    "run result: \"%s\" is not a string: fix the agent's reply", key);
		s = json_object_get_string(v);
		n = (size_t)json_object_get_string_len(v);
	}
	*out = dup_len(s, n);
	*len = n;
	return *out ? 0 : pv_err_set(err, ENOMEM, "run result: out of memory");
}

static int result_fields(struct json_object *obj, struct pv_run_result *r, struct pv_err *err)
{
	struct json_object *v;
	if (!json_object_is_type(obj, json_type_object))
		return pv_err_set(err, EINVAL,
				  "run result: not a JSON object: fix the agent's reply");
	if (!json_object_object_get_ex(obj, "exit_code", &v) ||
	    !json_object_is_type(v, json_type_int))
		return pv_err_set(
		    err, EINVAL,
		    "run result: \"exit_code\" missing or not an integer: fix the agent's reply");
	r->exit_code = json_object_get_int(v);
	const char *st = NULL;
	if (json_object_object_get_ex(obj, "status", &v) &&
	    json_object_is_type(v, json_type_string))
		st = json_object_get_string(v);
	if (st && !strcmp(st, "exited"))
		r->status = PV_RUN_EXITED;
	else if (st && !strcmp(st, "signalled"))
		r->status = PV_RUN_SIGNALLED;
	else if (st && !strcmp(st, "timed_out"))
		r->status = PV_RUN_TIMED_OUT;
	else
		return pv_err_set(err, EINVAL,
				  "run result: \"status\" must be exited, signalled or timed_out: "
				  "fix the agent's reply");
	if (json_object_object_get_ex(obj, "signal", &v) && v) {
		if (!json_object_is_type(v, json_type_int))
			return pv_err_set(err, EINVAL,
					  "run result: \"signal\" must be an integer or null: fix "
					  "the agent's reply");
		r->signal = json_object_get_int(v);
	}
	/* Unknown keys are ignored: a newer agent may report more. */
	int rc = result_str(obj, "stdout", &r->out, &r->out_len, err);
	return rc ? rc : result_str(obj, "stderr", &r->err, &r->err_len, err);
}

int pv_run_result_parse(const char *text, struct pv_run_result *r, struct pv_err *err)
{
	memset(r, 0, sizeof(*r));
	enum json_tokener_error jerr;
	struct json_object *obj = json_tokener_parse_verbose(text, &jerr);
	if (!obj)
		return pv_err_set(err, EINVAL, "run result: bad JSON (%s): fix the agent's reply",
				  json_tokener_error_desc(jerr));
	int rc = result_fields(obj, r, err);
	json_object_put(obj);
	if (rc)
		pv_run_result_free(r);
	return rc;
}

void pv_run_result_free(struct pv_run_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}
