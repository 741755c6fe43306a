/*
 * json.c — the JSON shim over json-c (README "JSON API"): request bodies
 * decoded with a size bound (the caller's, JSON_MAX_BODY), a depth bound
 * (JSON_MAX_DEPTH), strict syntax (RFC 8259: no comments, no single quotes,
 * no trailing text), UTF-8 validated, known fields type-checked, unknown
 * ones ignored, and a duplicate member name at the top level refused;
 * responses built as json-c objects and serialised by the library.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"

#define JSON_MAX_PAIRS 64

/* The fields of every /api/v1 request body.  A route reads only its own
 * (through form_read), so a field sent to another route is ignored there. */
const struct json_field json_api_fields[] = {
	{ "subject", JK_STRING }, { "description", JK_STRING }, { "priority", JK_STRING },
	{ "body", JK_STRING }, { "agent_id", JK_INT },
};
const size_t json_api_nfields = sizeof(json_api_fields) / sizeof(json_api_fields[0]);

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The index after the string that starts at s[i] (a '"'), in text json-c
 * has accepted; n when it runs off the end. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

/* The index after the value that starts at s[i]. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
	if (i >= n)
		return n;
	if (s[i] == '"')
		return skip_string(s, i, n);
	if (s[i] == '{' || s[i] == '[') {
		int depth = 0;
		while (i < n) {
			char c = s[i];
			if (c == '"') {
				i = skip_string(s, i, n);
				continue;
			}
			if (c == '{' || c == '[')
				depth++;
			else if ((c == '}' || c == ']') && --depth == 0)
				return i + 1;
			i++;
		}
		return n;
	}
	while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && !is_ws(s[i]))
		i++;
	return i;
}

static int hex4(const char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v * 16 + (unsigned)d;
	}
	return 0;
}

/* 1 when a string of s (valid JSON) holds a \u escape of a lone UTF-16
 * surrogate: json-c would turn it into U+FFFD silently; it is refused as
 * invalid characters instead (RFC 8259 §8.2). */
static int lone_surrogate(const char *s, size_t n)
{
	int in = 0, high = 0;

	for (size_t i = 0; i < n; i++) {
		if (!in) {
			in = s[i] == '"';
			continue;
		}
		if (s[i] == '"') {
			if (high)
				return 1;
			in = 0;
			continue;
		}
		if (s[i] != '\\') {
			if (high)
				return 1;
			continue;
		}
		unsigned v;
		if (i + 5 < n && s[i + 1] == 'u' && hex4(s + i + 2, &v) == 0) {
			if (v >= 0xDC00 && v <= 0xDFFF) {
				if (!high)
					return 1;
				high = 0;
			} else if (v >= 0xD800 && v <= 0xDBFF) {
				if (high)
					return 1;
				high = 1;
			} else if (high)
				return 1;
			i += 5;
			continue;
		}
		if (high)
			return 1;
		i++;   /* another escape: skip its letter */
	}
	return high;
}

/* 1 when s (accepted by json-c) is RFC 8259 outside its strings too:
 * json-c's strict mode still takes single-quoted strings and NaN or
 * Infinity; here a bare word must be true, false or null, and nothing
 * but structure, numbers and white space may stand between strings. */
static int strict_syntax(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		char c = s[i];
		if (c == '"') {
			i = skip_string(s, i, n);
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			size_t j = i;
			while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
				j++;
			size_t w = j - i;
			int number_e = w == 1 && (c == 'e' || c == 'E') && i > 0 && s[i - 1] >= '0' &&
			    s[i - 1] <= '9';
			if (!number_e && !(w == 4 && !memcmp(s + i, "true", 4)) &&
			    !(w == 5 && !memcmp(s + i, "false", 5)) && !(w == 4 && !memcmp(s + i, "null", 4)))
				return 0;
			i = j;
			continue;
		}
		if (c == '\0' || !strchr("{}[]:,+-.0123456789 \t\r\n", c))
			return 0;
		i++;
	}
	return 1;
}

/* The members of the top-level object in s (valid JSON, per json-c),
 * duplicates included: json-c keeps the last of two equal names silently,
 * so comparing this count with the object's length finds them. */
static size_t top_members(const char *s, size_t n)
{
	size_t i = 0, count = 0;

	while (i < n && is_ws(s[i]))
		i++;
	if (i >= n || s[i] != '{')
		return 0;
	i++;
	for (;;) {
		while (i < n && is_ws(s[i]))
			i++;
		if (i >= n || s[i] != '"')
			return count;
		i = skip_string(s, i, n);
		while (i < n && (is_ws(s[i]) || s[i] == ':'))
			i++;
		i = skip_value(s, i, n);
		count++;
		while (i < n && is_ws(s[i]))
			i++;
		if (i >= n || s[i] != ',')
			return count;
		i++;
	}
}

int json_decode(struct arena *a, const char *body, size_t len, const struct json_field *fields,
                size_t nfields, struct kvlist *out, const char **why, const char **field)
{
	size_t cap = 0;
	int status = 0;

	*field = NULL;
	if (len > JSON_MAX_BODY) {
		*why = "The request body is larger than 64 KiB";
		return 413;
	}
	if (len == 0 || memchr(body, '\0', len)) {
		*why = "The request body is not valid JSON";
		return 400;
	}
	struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL) {
		*why = "The request body could not be read";
		return 400;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error err = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (err == json_tokener_error_parse_utf8_string) {
		*why = "Invalid characters";
		status = 422;
		goto done;
	}
	if (err == json_tokener_error_depth) {
		*why = "The request body is nested too deeply";
		status = 400;
		goto done;
	}
	if (err != json_tokener_success) {
		*why = err == json_tokener_continue ? "The request body is incomplete JSON"
		    : "The request body is not valid JSON";
		status = 400;
		goto done;
	}
	for (; end < len; end++)
		if (!is_ws(body[end])) {
			*why = "The request body is not valid JSON";
			status = 400;
			goto done;
		}
	if (!strict_syntax(body, len)) {
		*why = "The request body is not valid JSON";
		status = 400;
		goto done;
	}
	if (!json_object_is_type(o, json_type_object)) {
		*why = "The request body must be a JSON object";
		status = 400;
		goto done;
	}
	if (lone_surrogate(body, len)) {
		*why = "Invalid characters";
		status = 422;
		goto done;
	}
	if (top_members(body, len) != (size_t)json_object_object_length(o)) {
		*why = "A field appears twice in the request body";
		status = 422;
		goto done;
	}
	for (size_t i = 0; i < nfields; i++) {
		struct json_object *v;
		char num[32];
		const char *val;
		if (!json_object_object_get_ex(o, fields[i].name, &v))
			continue;
		*field = fields[i].name;
		switch (fields[i].kind) {
		case JK_STRING: {
			if (!json_object_is_type(v, json_type_string)) {
				*why = arena_printf(a, "%s must be a string", fields[i].name);
				status = 422;
				goto done;
			}
			size_t n = (size_t)json_object_get_string_len(v);
			val = json_object_get_string(v);
			/* \u0000 and lone surrogates arrive as bytes that are no text */
			if (memchr(val, '\0', n) || !utf8_valid(val, n)) {
				*why = "Invalid characters";
				status = 422;
				goto done;
			}
			break;
		}
		case JK_INT:
			if (!json_object_is_type(v, json_type_int)) {
				*why = arena_printf(a, "%s must be an integer", fields[i].name);
				status = 422;
				goto done;
			}
			/* past int64 json-c saturates; the field's own range check refuses it */
			snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
			val = num;
			break;
		default:
			status = 500;
			goto done;
		}
		if (kv_add(a, out, &cap, JSON_MAX_PAIRS, fields[i].name, arena_strdup(a, val)) != PARSE_OK) {
			*why = "The request body could not be read";
			status = 400;
			goto done;
		}
	}
	*field = NULL;
done:
	json_object_put(o);
	return status;
}

int json_respond(struct request *r, int status, struct json_object *o)
{
	if (o == NULL) {
		log_err("%s: req=%s out of memory building JSON", __func__, r->id);
		return 500;
	}
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	r->body = arena_strdup(r->a, s ? s : "{}");
	r->body_len = strlen(r->body);
	r->ctype = "application/json";
	json_object_put(o);
	return status;
}

struct json_object *json_time(struct arena *a, const char *unix_ts)
{
	struct tm tm;
	char buf[40], *end;

	if (unix_ts == NULL)
		return NULL;
	time_t t = (time_t)strtoll(unix_ts, &end, 10);
	if (end == unix_ts || gmtime_r(&t, &tm) == NULL)
		return NULL;
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	(void)a;
	return json_object_new_string(buf);
}

struct json_object *json_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}
