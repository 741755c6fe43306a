/*
 * test_multipart.c — multipart/form-data bodies (multipart.c) over the
 * captured Chromium, Firefox and curl bodies of test/fuzz/corpus/multipart/
 * and made-up ones: fields, files byte-exact (NULs, a 20 MiB part), the
 * browser's empty file input, too many files, the refusals; filename_clean
 * (text.c) on hostile names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

#define CORPUS CCR_SRC "/test/fuzz/corpus/multipart/"
#define B "----WebKitFormBoundaryABCDEFGHIJKLMNOP"
#define CT "multipart/form-data; boundary=" B

static int arena_setup(void **state)
{
	*state = arena_new(0);
	return *state ? 0 : -1;
}

static int arena_teardown(void **state)
{
	arena_free(*state);
	return 0;
}

struct parsed {
	struct kvlist form;
	struct attach_file files[ATTACH_MAX_FILES];
	size_t nfiles, sent;
	void *h;
	const char *why;
	int rc;
};

static void parse(struct arena *a, const char *ct, const char *body, size_t len,
                  const struct form *fm, struct parsed *p)
{
	p->rc = multipart_parse(a, ct, body, len, fm, 65536, &p->form, p->files, &p->nfiles,
	    &p->sent, &p->h, &p->why);
}

/* all of a file's bytes (malloc'd), *n of them */
static char *slurp(struct attach_file *f, size_t *n)
{
	size_t cap = 1 << 16, got = 0;
	char *b = malloc(cap);
	long k;

	while ((k = multipart_stream_read(f->stream, b + got, cap - got)) > 0) {
		got += (size_t)k;
		if (got == cap)
			b = realloc(b, cap *= 2);
	}
	assert_int_equal(k, 0);
	*n = got;
	return b;
}

/* a corpus file: the Content-Type line, then the body */
static char *corpus(const char *name, char **body, size_t *len)
{
	char path[512];
	FILE *fp;
	long n;
	char *all;

	snprintf(path, sizeof(path), "%s%s", CORPUS, name);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	all = malloc((size_t)n + 1);
	assert_int_equal(fread(all, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	all[n] = '\0';
	char *nl = strchr(all, '\n');
	*nl = '\0';
	*body = nl + 1;
	*len = (size_t)(all + n - *body);
	return all;
}

static void test_chromium_reply(void **state)
{
	struct parsed p;
	char *body;
	size_t len, n;
	char *all = corpus("chromium-reply-two-files", &body, &len);

	parse(*state, all, body, len, &form_message, &p);
	assert_int_equal(p.rc, 0);
	assert_string_equal(kv_get(&p.form, "csrf_token"), "tok");
	assert_string_equal(kv_get(&p.form, "body"), "R\xc3\xa9ponse with \"quotes\" & lines\r\nsecond");
	assert_int_equal(p.nfiles, 2);
	assert_int_equal(p.sent, 2);
	assert_string_equal(p.files[0].name, "pic.png");
	char *d = slurp(&p.files[0], &n);
	assert_int_equal(n, 13);
	assert_memory_equal(d, "PNG\x89\x00\x01 binary", 13);
	free(d);
	/* the browser escapes '"' as %22; kept as sent */
	assert_string_equal(p.files[1].name, "n a%22me.txt");
	d = slurp(&p.files[1], &n);
	assert_int_equal(n, 6);
	assert_memory_equal(d, "hello\n", 6);
	free(d);
	multipart_free(p.h);
	free(all);
}

static void test_empty_file_input_skipped(void **state)
{
	struct parsed p;
	char *body;
	size_t len;
	char *all = corpus("chromium-reply-no-file", &body, &len);

	parse(*state, all, body, len, &form_message, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nfiles, 0);
	assert_int_equal(p.sent, 0);
	multipart_free(p.h);
	free(all);
	/* curl's empty file has a name: it is a file of 0 bytes */
	all = corpus("curl-ticket-empty-file", &body, &len);
	parse(*state, all, body, len, &form_ticket, &p);
	assert_int_equal(p.rc, 0);
	assert_string_equal(kv_get(&p.form, "subject"), "Printer");
	assert_int_equal(p.nfiles, 1);
	assert_string_equal(p.files[0].name, "empty.txt");
	size_t n;
	free(slurp(&p.files[0], &n));
	assert_int_equal(n, 0);
	multipart_free(p.h);
	free(all);
}

static void test_firefox_ticket(void **state)
{
	struct parsed p;
	char *body;
	size_t len;
	char *all = corpus("firefox-ticket-two-files", &body, &len);

	parse(*state, all, body, len, &form_ticket, &p);
	assert_int_equal(p.rc, 0);
	assert_string_equal(kv_get(&p.form, "priority"), "urgent");
	assert_string_equal(p.files[0].name, "\xc3\x9c" "bersicht 2026.pdf");
	assert_string_equal(p.files[1].name, "scan.jpg");
	/* fields of another form are not read */
	multipart_free(p.h);
	parse(*state, all, body, len, &form_message, &p);
	assert_int_equal(p.rc, 0);
	assert_null(kv_get(&p.form, "subject"));
	assert_non_null(kv_get(&p.form, "csrf_token"));
	multipart_free(p.h);
	free(all);
}

/* a 20 MiB part with NULs comes back byte for byte */
static void test_big_binary_part(void **state)
{
	size_t size = 20u << 20, n;
	char *body = malloc(size + 512), *w = body;
	struct parsed p;

	w += sprintf(w, "--" B "\r\nContent-Disposition: form-data; name=\"attachment\"; "
	             "filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
	char *data = w;
	for (size_t i = 0; i < size; i++)
		data[i] = (char)(i * 7 % 251);
	w += size;
	w += sprintf(w, "\r\n--" B "--\r\n");
	parse(*state, CT, body, (size_t)(w - body), &form_message, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nfiles, 1);
	char *d = slurp(&p.files[0], &n);
	assert_int_equal(n, size);
	assert_memory_equal(d, data, size);
	/* rewound, it reads again */
	assert_int_equal(multipart_stream_rewind(p.files[0].stream), 0);
	free(slurp(&p.files[0], &n));
	assert_int_equal(n, size);
	free(d);
	multipart_free(p.h);
	free(body);
}

static void test_six_files_counted(void **state)
{
	char body[4096], *w = body;
	struct parsed p;

	for (int i = 0; i < 6; i++)
		w += sprintf(w, "--" B "\r\nContent-Disposition: form-data; name=\"attachment\"; "
		             "filename=\"f%d.txt\"\r\n\r\nx%d\r\n", i, i);
	w += sprintf(w, "--" B "--\r\n");
	parse(*state, CT, body, (size_t)(w - body), &form_message, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nfiles, ATTACH_MAX_FILES);
	assert_int_equal(p.sent, 6);
	multipart_free(p.h);
}

static void refused(struct arena *a, const char *ct, const char *body, int rc, const char *why)
{
	struct parsed p;

	parse(a, ct, body, strlen(body), &form_message, &p);
	assert_int_equal(p.rc, rc);
	assert_string_equal(p.why, why);
	multipart_free(p.h);
}

static void test_refusals(void **state)
{
	struct arena *a = *state;
	char big[10000];

	refused(a, "multipart/form-data", "--x\r\n\r\n--x--\r\n", 422, "The form has no boundary");
	refused(a, "multipart/form-data; boundary=a; boundary=b", "--a--\r\n", 422,
	        "The form has more than one boundary");
	refused(a, "text/plain; boundary=x", "--x--\r\n", 422, "The form is not multipart/form-data");
	refused(a, CT, "", 422, "The form has no fields");
	refused(a, CT, "--" B "--\r\n", 422, "The form has no fields");
	refused(a, CT, "--" B "\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\ncut", 422,
	        "The form is cut short");
	refused(a, CT, "--" B "\r\nContent-Type: text/plain\r\n\r\nv\r\n--" B "--\r\n", 422,
	        "A part of the form has no Content-Disposition");
	refused(a, CT, "--" B "\r\nContent-Disposition: form-data\r\n\r\nv\r\n--" B "--\r\n", 422,
	        "A part of the form has no name");
	refused(a, CT, "--" B "\r\nContent-Disposition: inline; name=\"body\"\r\n\r\nv\r\n--" B "--\r\n",
	        422, "A part of the form is not form-data");
	refused(a, CT, "--" B "\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n\xff\r\n--" B
	        "--\r\n", 422, "Invalid characters");
	snprintf(big, sizeof(big), "--" B "\r\nContent-Disposition: form-data; name=\"body\"\r\n"
	         "X-Pad: %09000d\r\n\r\nv\r\n--" B "--\r\n", 0);
	refused(a, CT, big, 422, "A part of the form has too long a header");
	char *w = big;
	for (int i = 0; i < 70; i++)
		w += sprintf(w, "--" B "\r\n\r\n");
	sprintf(w, "--" B "--\r\n");
	refused(a, CT, big, 422, "The form has too many parts");
}

static void test_filename_clean(void **state)
{
	struct arena *a = *state;
	char long_name[400];

	assert_string_equal(filename_clean(a, "../../etc/passwd", 16), "passwd");
	assert_string_equal(filename_clean(a, "C:\\Users\\x\\evil.exe", 19), "evil.exe");
	assert_string_equal(filename_clean(a, "a\0b.txt", 7), "a_b.txt");
	assert_string_equal(filename_clean(a, "a\r\nb\t.txt", 9), "a__b_.txt");
	assert_string_equal(filename_clean(a, "..", 2), "_");
	assert_string_equal(filename_clean(a, "...", 3), "_");
	assert_string_equal(filename_clean(a, "", 0), "attachment");
	assert_string_equal(filename_clean(a, "dir/", 4), "attachment");
	assert_string_equal(filename_clean(a, " .hidden. ", 10), "hidden");
	assert_string_equal(filename_clean(a, "say \"hi\".txt", 12), "say _hi_.txt");
	assert_string_equal(filename_clean(a, "caf\xc3\xa9 \xe2\x9c\x93.txt", 13), "caf\xc3\xa9 \xe2\x9c\x93.txt");
	assert_string_equal(filename_clean(a, "bad\xff\xc3.txt", 9), "bad__.txt");
	assert_string_equal(filename_clean(a, "c1\xc2\x85.txt", 8), "c1__.txt");
	memset(long_name, 'a', 300);
	memcpy(long_name + 300, ".pdf", 5);
	const char *n = filename_clean(a, long_name, 304);
	assert_int_equal(strlen(n), 255);
	assert_string_equal(n + 251, ".pdf");
	/* a cut inside a multi-byte character backs off to its start */
	for (int i = 0; i < 150; i++)
		memcpy(long_name + 2 * i, "\xc3\xa9", 2);
	n = filename_clean(a, long_name, 300);
	assert_true(strlen(n) <= 255 && utf8_valid(n, strlen(n)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chromium_reply, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_input_skipped, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_firefox_ticket, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_big_binary_part, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_six_files_counted, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_filename_clean, arena_setup, arena_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
