/*
 * fuzz_json.c — json_decode, the API's request-body decoder (json.c over
 * json-c).  Whatever the bytes: the answer is 0, 400, 413 or 422 with a
 * message; on 0 every pair is one of the API's fields, given once, its
 * value NUL-terminated valid UTF-8 without an inner NUL, an integer field
 * a decimal number, and a string field equal to what an independent
 * json-c parse of the same bytes holds.
 */
#include <json-c/json.h>

#include "extern.h"
#include "fuzz_util.h"

static struct arena *A;

static const struct json_field *field_of(const char *name)
{
	for (size_t i = 0; i < json_api_nfields; i++)
		if (strcmp(json_api_fields[i].name, name) == 0)
			return &json_api_fields[i];
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvlist l = { 0 };
	const char *why = NULL, *field = NULL;

	if (A == NULL)
		A = arena_new(1024);
	int rc = json_decode(A, (const char *)data, size, json_api_fields, json_api_nfields, &l,
	    &why, &field);
	CHECK(rc == 0 || rc == 400 || rc == 413 || rc == 422);
	CHECK(rc == 0 || (why != NULL && *why));
	CHECK(rc != 413 || size > JSON_MAX_BODY);
	if (rc == 0) {
		char *copy = fz_strndup(data, size);
		struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH + 1);
		struct json_object *ref = json_tokener_parse_ex(tok, copy, (int)size);
		CHECK(ref != NULL && json_object_is_type(ref, json_type_object));
		CHECK(l.n <= json_api_nfields);
		for (size_t i = 0; i < l.n; i++) {
			const struct json_field *f = field_of(l.v[i].key);
			CHECK(f != NULL);
			for (size_t j = 0; j < i; j++)
				CHECK(strcmp(l.v[j].key, l.v[i].key) != 0);
			const char *v = l.v[i].val;
			CHECK(utf8_valid(v, strlen(v)));
			struct json_object *rv;
			CHECK(json_object_object_get_ex(ref, f->name, &rv));
			if (f->kind == JK_STRING) {
				CHECK(json_object_is_type(rv, json_type_string));
				CHECK((size_t)json_object_get_string_len(rv) == strlen(v));
				CHECK(memcmp(json_object_get_string(rv), v, strlen(v)) == 0);
			} else {
				char *end;
				CHECK(json_object_is_type(rv, json_type_int));
				(void)strtoll(v, &end, 10);
				CHECK(*v && *end == '\0');
			}
		}
		json_object_put(ref);
		json_tokener_free(tok);
		free(copy);
	}
	arena_reset(A);
	return 0;
}
