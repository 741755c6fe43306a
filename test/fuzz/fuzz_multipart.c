/*
 * fuzz_multipart.c — multipart_parse (multipart/form-data bodies through
 * GMime) and filename_clean.  Input: the Content-Type value up to the first
 * LF, then the body; the first byte's low bit picks the form (the reply's
 * or the new ticket's).  Checked: the result is 0, 413 or 422 with a
 * message; on 0 at most ATTACH_MAX_FILES files, each with a clean name
 * whose bytes read back (together never more than the body), and text
 * fields of the form only, valid UTF-8 without NUL, within max_text.
 * filename_clean over the raw input: never empty, at most 255 bytes, no
 * path separator, control character or "..", valid UTF-8.
 */
#include "extern.h"
#include "fuzz_util.h"

#define MAX_TEXT 4096

static struct arena *A;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	A = arena_new(64 * 1024);
	return 0;
}

static void check_name(const char *n)
{
	size_t len = strlen(n);

	CHECK(len > 0 && len <= FILENAME_MAX_BYTES);
	CHECK(ref_utf8_valid(n, len, NULL));
	CHECK(strstr(n, "..") == NULL);
	for (const char *p = n; *p; p++)
		CHECK(*p != '/' && *p != '\\' && (unsigned char)*p >= 0x20 && *p != 0x7f && *p != '"');
}

static int in_form(const struct form *fm, const char *k)
{
	if (strcmp(k, "csrf_token") == 0)
		return 1;
	for (int i = 0; i < fm->n; i++)
		if (fm->f[i].kind != FK_FILE && strcmp(fm->f[i].name, k) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct attach_file files[ATTACH_MAX_FILES];
	struct kvlist form;
	size_t nfiles = 0, sent = 0, text = 0;
	void *handle = NULL;
	const char *why = NULL;

	check_name(filename_clean(A, (const char *)data, size < 2000 ? size : 2000));
	if (nl == NULL) {
		arena_reset(A);
		return 0;
	}
	char *ctype = fz_strndup(data, (size_t)(nl - data));
	const uint8_t *body = nl + 1;
	size_t blen = size - (size_t)(body - data);
	const struct form *fm = size && (data[0] & 1) ? &form_ticket : &form_message;

	int rc = multipart_parse(A, ctype, (const char *)body, blen, fm, MAX_TEXT, &form, files,
	    &nfiles, &sent, &handle, &why);
	CHECK(rc == 0 || rc == 413 || rc == 422);
	CHECK(rc == 0 || (why && why[0]));
	if (rc == 0) {
		CHECK(nfiles <= ATTACH_MAX_FILES && sent >= nfiles);
		CHECK(sent <= ATTACH_MAX_FILES ? nfiles == sent : nfiles == ATTACH_MAX_FILES);
		size_t total = 0;
		char buf[4096];
		for (size_t i = 0; i < nfiles; i++) {
			long n;
			check_name(files[i].name);
			CHECK(files[i].stream != NULL);
			while ((n = multipart_stream_read(files[i].stream, buf, sizeof(buf))) > 0)
				total += (size_t)n;
			CHECK(n == 0);
			CHECK(multipart_stream_rewind(files[i].stream) == 0);
		}
		/* decoding (base64) only shrinks; quoted-printable never grows either */
		CHECK(total <= blen);
		for (size_t i = 0; i < form.n; i++) {
			size_t n = strlen(form.v[i].val);
			CHECK(in_form(fm, form.v[i].key));
			CHECK(ref_utf8_valid(form.v[i].val, n, NULL) || n == 0);
			text += n;
		}
		CHECK(text <= MAX_TEXT);
	}
	multipart_free(handle);
	free(ctype);
	arena_reset(A);
	return 0;
}
