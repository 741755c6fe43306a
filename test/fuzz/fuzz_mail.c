/*
 * fuzz_mail.c — inmail_parse over any bytes (the first byte picks the
 * envelope sender and the size limit), and the decisions it makes checked:
 * the result is one of the three; the key is the SHA-256 of the Message-ID
 * or of the raw bytes; every string is valid UTF-8 without control
 * characters (one-line fields without LF or TAB, trimmed; from without
 * upper case); tokens are INMAIL_TOKEN_LEN of [a-z0-9] and distinct; every
 * file has a name, is listed in the text, and the counts stay in bounds; the
 * null sender is automatic.  inmail_html_text and inmail_strip_quote run on
 * the same bytes: clean text, and the quote cut leaves a trimmed part of
 * its input in place.
 */
#include "extern.h"
#include "fuzz_util.h"

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* clean: valid UTF-8, no C0 control but (multi-line) LF and TAB, no DEL. */
static int clean(const char *s, int one_line)
{
	size_t n = strlen(s);

	if (!ref_utf8_valid(s, n, NULL))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0x7f || (c < 0x20 && (one_line || (c != '\n' && c != '\t'))))
			return 0;
	}
	return 1;
}

static int trimmed(const char *s)
{
	size_t n = strlen(s);

	return n == 0 || (!is_ws(s[0]) && !is_ws(s[n - 1]));
}

static void check_parsed(const struct inmail *m, const char *envelope)
{
	char key[65];

	if (m->message_id) {
		CHECK(m->message_id[0] && clean(m->message_id, 1));
		CHECK(crypto_sha256_hex(m->message_id, strlen(m->message_id), key) == 0);
		CHECK(strcmp(key, m->key) == 0);
	}
	CHECK(clean(m->from, 1) && trimmed(m->from));
	for (const char *p = m->from; *p; p++)
		CHECK(!(*p >= 'A' && *p <= 'Z'));
	CHECK(clean(m->from_name, 1) && trimmed(m->from_name));
	CHECK(clean(m->subject, 1) && trimmed(m->subject));
	CHECK(clean(m->text, 0) && trimmed(m->text));
	CHECK((unsigned)m->automatic < IA__MAX);
	CHECK((inmail_auto_name(m->automatic)[0] != '\0') == (m->automatic != IA_NONE));
	if (envelope && envelope[0] == '\0')
		CHECK(m->automatic != IA_NONE && m->automatic <= IA_NULL_SENDER);
	CHECK(m->ntokens <= INMAIL_TOKENS_MAX);
	for (size_t i = 0; i < m->ntokens; i++) {
		CHECK(strlen(m->tokens[i]) == INMAIL_TOKEN_LEN);
		CHECK(strspn(m->tokens[i], "abcdefghijklmnopqrstuvwxyz0123456789") == INMAIL_TOKEN_LEN);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(m->tokens[i], m->tokens[j]) != 0);
	}
	CHECK(m->nfiles <= INMAIL_FILES_MAX);
	CHECK(m->files_dropped == 0 || m->nfiles == INMAIL_FILES_MAX);
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct inmail_file *f = &m->files[i];
		CHECK(f->name[0] && clean(f->name, 1) && trimmed(f->name));
		CHECK(clean(f->ctype, 1));
		CHECK(f->data != NULL);
	}
}

static void check_html(struct arena *a, const char *s, size_t n)
{
	const char *t = inmail_html_text(a, s, n);

	CHECK(clean(t, 0) && trimmed(t));
	CHECK(strstr(t, "\n\n\n") == NULL);
	CHECK(strstr(t, " \n") == NULL && strstr(t, "\t\n") == NULL);
}

static void check_strip(const char *s)
{
	char *copy = strdup(s);
	char *r = inmail_strip_quote(copy);
	size_t n = strlen(r);

	CHECK(r >= copy && r <= copy + strlen(s));
	CHECK(memcmp(r, s + (r - copy), n) == 0);
	CHECK(trimmed(r));
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const envelopes[4] = { NULL, "", "MAILER-DAEMON@mx.example.com",
	                                          "a@example.com" };
	static struct arena *a;
	const char *env, *raw;
	size_t n, max;
	struct inmail m;
	char key[65];
	int rc;

	if (size == 0)
		return 0;
	if (!a)
		a = arena_new(0);
	env = envelopes[data[0] & 3];
	max = (data[0] & 4) ? 256 : 1 << 20;
	raw = (const char *)data + 1;
	n = size - 1;
	rc = inmail_parse(a, raw, n, env, "support@help.example.com", max, &m);
	CHECK(rc == INMAIL_OK || rc == INMAIL_UNPARSEABLE || rc == INMAIL_TOO_LARGE);
	CHECK(str_is_hex(m.key, 64, 64));
	CHECK((rc == INMAIL_TOO_LARGE) == (n > max));
	if (rc == INMAIL_OK) {
		check_parsed(&m, env);
	} else {
		CHECK(m.message_id == NULL && m.nfiles == 0 && m.ntokens == 0);
		CHECK(!strcmp(m.from, "") && !strcmp(m.subject, "") && !strcmp(m.text, ""));
	}
	if (!m.message_id) {
		CHECK(crypto_sha256_hex(raw, n, key) == 0);
		CHECK(strcmp(key, m.key) == 0);
	}

	char *s = fz_strndup(data, size);
	check_html(a, (const char *)data, size);
	check_strip(s);
	free(s);
	arena_reset(a);
	return 0;
}
