/*
 * fuzz_route.c — route_match.  Input: "METHOD PATH" (split at the first
 * space; without one, all of it is the path and the method is GET).  The
 * answer is checked against a reference matcher over the route table as
 * route_name() lists it: the first route whose pattern matches and whose
 * method equals the input's (HEAD also takes GET routes); else 405 when
 * some pattern matches (Allow lists their methods), else 404.
 */
#include "extern.h"
#include "fuzz_util.h"

#define MAXR 256
static struct { char method[16]; char pattern[64]; } tab[MAXR];
static size_t ntab;

static void load_table(void)
{
	for (int i = 0; i < MAXR; i++) {
		const char *n = route_name(i);
		if (strcmp(n, "none") == 0)
			break;
		const char *sp = strchr(n, ' ');
		CHECK(sp != NULL && (size_t)(sp - n) < sizeof(tab[0].method));
		memcpy(tab[i].method, n, (size_t)(sp - n));
		snprintf(tab[i].pattern, sizeof(tab[i].pattern), "%s", sp + 1);
		ntab++;
	}
	CHECK(ntab > 0);
}

/* Reference: {id} = 1..18 digits, no leading zero. */
static int ref_match(const char *pat, const char *path, long long *id)
{
	*id = 0;
	while (*pat) {
		if (strncmp(pat, "{id}", 4) == 0) {
			size_t n = strspn(path, "0123456789");
			if (n == 0 || n > 18 || path[0] == '0')
				return 0;
			*id = strtoll(path, NULL, 10);
			path += n;
			pat += 4;
		} else if (*pat++ != *path++) {
			return 0;
		}
	}
	return *path == '\0';
}

static void one(const char *method, const char *path, size_t allowlen)
{
	char *allow = malloc(allowlen ? allowlen : 1);   /* exact size for ASan */
	long long id = -7, want_id = 0;
	int status = -7;
	size_t first = ntab;
	int seen = 0;

	memset(allow, 'X', allowlen ? allowlen : 1);
	const struct route *rt = route_match(method, path, &id, &status, allow, allowlen);
	int head = strcmp(method, "HEAD") == 0;
	for (size_t i = 0; i < ntab; i++) {
		long long v;
		if (!ref_match(tab[i].pattern, path, &v))
			continue;
		seen = 1;
		if (first == ntab && (strcmp(tab[i].method, method) == 0 ||
		                      (head && strcmp(tab[i].method, "GET") == 0))) {
			first = i;
			want_id = v;
		}
	}
	CHECK(allowlen == 0 || nul_within(allow, allowlen));
	if (rt) {
		CHECK(first < ntab);
		CHECK(strcmp(rt->method, tab[first].method) == 0);
		CHECK(strcmp(rt->pattern, tab[first].pattern) == 0);
		CHECK(strcmp(rt->method, method) == 0 || (head && strcmp(rt->method, "GET") == 0));
		CHECK(rt->handler != NULL);
		CHECK(id == want_id);
		CHECK((strstr(rt->pattern, "{id}") != NULL) == (id > 0));
		CHECK(status == -7);     /* untouched on a match */
	} else {
		CHECK(first == ntab);
		CHECK(status == (seen ? 405 : 404));
		CHECK(id == -7);
		if (allowlen >= 64) {
			if (status == 405) {
				CHECK(allow[0] != '\0');
				/* every method of a path-matching route is listed */
				for (size_t i = 0; i < ntab; i++) {
					long long v;
					if (ref_match(tab[i].pattern, path, &v))
						CHECK(strstr(allow, tab[i].method) != NULL);
				}
			} else {
				CHECK(allow[0] == '\0');
			}
		}
	}
	free(allow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ntab == 0)
		load_table();
	char *s = fz_strndup(data, size);
	char *sp = strchr(s, ' ');
	const char *method = "GET", *path = s;
	if (sp) {
		*sp = '\0';
		method = s;
		path = sp + 1;
	}
	one(method, path, 64);     /* what route_dispatch passes */
	one(method, path, 8);      /* a short Allow buffer must stay terminated */
	one(method, path, 0);
	free(s);
	return 0;
}
