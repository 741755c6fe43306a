/*
 * test_inmail.c — inbound mail parsing (inmail.c): every mail of
 * test/mail/corpus/NAME.eml against NAME.expect, a 20 MiB attachment made
 * here, the attachment limit, the automatic-mail rules with an envelope
 * sender, charsets, and inmail_strip_quote / inmail_html_text directly.
 *
 * NAME.expect: "key: value" lines, then a line "text:" and the exact text
 * to the end of the file (its last newline not part of it).  Inputs:
 * envelope (the envelope sender; "<>" is the null sender, absent: none),
 * max_bytes (default 10 MiB).  Checked: parse (ok, unparseable,
 * too_large), key (message_id: the SHA-256 of the Message-ID; raw: of the
 * bytes), and for parse: ok every one of message_id (or none), from,
 * from_name, subject, automatic (none or inmail_auto_name), tokens
 * (space-separated, in order), plus_other, to_support, files (a count),
 * one "file: NAME | CTYPE | LEN" line each, files_dropped, text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "extern.h"

#define CORPUS CCR_SRC "/test/mail/corpus"
#define SUPPORT "support@help.example.com"
#define T1 "k3v9q2m7x1b8n4c6z5w0r2t7"

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

/* slurp: a file's bytes, NUL-terminated (*len without it); NULL absent. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	b[n] = '\0';
	*len = (size_t)n;
	return b;
}

/* ---- the corpus ------------------------------------------------------------ */

enum { K_PARSE, K_KEY, K_MID, K_FROM, K_NAME, K_SUBJECT, K_AUTO, K_TOKENS, K_PLUS,
       K_SUPPORT, K_FILES, K_DROPPED, K_TEXT, K__N };
static const char *const keys[K__N] = { "parse", "key", "message_id", "from", "from_name",
	"subject", "automatic", "tokens", "plus_other", "to_support", "files", "files_dropped",
	"text" };

struct expect {
	const char *val[K__N];
	const char *envelope;
	size_t max_bytes;
	const char *file[INMAIL_FILES_MAX];
	size_t nfile;
};

/* read_expect: the .expect text (modified in place) into *e; 0, or -1 with
 * the reason printed. */
static int read_expect(char *s, struct expect *e, const char *name)
{
	memset(e, 0, sizeof(*e));
	e->max_bytes = 10u << 20;
	while (*s) {
		char *eol = strchr(s, '\n'), *colon, *v;
		if (eol)
			*eol = '\0';
		if (strcmp(s, "text:") == 0) {
			char *t = eol ? eol + 1 : s + strlen(s);
			size_t n = strlen(t);
			if (n && t[n - 1] == '\n')
				t[n - 1] = '\0';
			e->val[K_TEXT] = t;
			return 0;
		}
		colon = strchr(s, ':');
		if (s[0] != '#' && s[0]) {
			if (!colon) {
				print_error("%s.expect: no colon in \"%s\"\n", name, s);
				return -1;
			}
			*colon = '\0';
			v = colon + 1 + (colon[1] == ' ');
			if (strcmp(s, "envelope") == 0)
				e->envelope = strcmp(v, "<>") == 0 ? "" : v;
			else if (strcmp(s, "max_bytes") == 0)
				e->max_bytes = strtoul(v, NULL, 10);
			else if (strcmp(s, "file") == 0 && e->nfile < INMAIL_FILES_MAX)
				e->file[e->nfile++] = v;
			else {
				int k = str_lookup(keys, K__N, s);
				if (k < 0) {
					print_error("%s.expect: unknown key \"%s\"\n", name, s);
					return -1;
				}
				e->val[k] = v;
			}
		}
		if (!eol)
			break;
		s = eol + 1;
	}
	return 0;
}

static int same(const char *name, const char *what, const char *want, const char *got)
{
	if (want == NULL) {
		print_error("%s: \"%s\" missing from the .expect\n", name, what);
		return 0;
	}
	if (strcmp(want, got) == 0)
		return 1;
	print_error("%s: %s\n  want \"%s\"\n  got  \"%s\"\n", name, what, want, got);
	return 0;
}

/* check_one: NAME.eml against NAME.expect; the number of mismatches. */
static int check_one(const char *name)
{
	static const char *const parses[] = { "ok", "unparseable", "too_large" };
	char path[512], buf[2048], want_key[65];
	size_t len, elen;
	char *raw, *exp;
	struct expect e;
	struct inmail m;
	struct arena *a = arena_new(0);
	int bad = 0, rc;

	snprintf(path, sizeof(path), "%s/%s.eml", CORPUS, name);
	raw = slurp(path, &len);
	snprintf(path, sizeof(path), "%s/%s.expect", CORPUS, name);
	exp = slurp(path, &elen);
	if (!raw || !exp || read_expect(exp, &e, name) < 0) {
		print_error("%s: .eml or .expect missing or unreadable\n", name);
		free(raw);
		free(exp);
		arena_free(a);
		return 1;
	}
	rc = inmail_parse(a, raw, len, e.envelope, SUPPORT, e.max_bytes, &m);
	bad += !same(name, "parse", e.val[K_PARSE], parses[rc]);
	if (e.val[K_KEY] && strcmp(e.val[K_KEY], "message_id") == 0 && m.message_id)
		crypto_sha256_hex(m.message_id, strlen(m.message_id), want_key);
	else
		crypto_sha256_hex(raw, len, want_key);
	bad += !same(name, "key kind", e.val[K_KEY], m.message_id ? "message_id" : "raw");
	bad += !same(name, "key", want_key, m.key);
	if (rc != INMAIL_OK) {
		bad += !same(name, "text of a failed parse", "", m.text);
		bad += !same(name, "from of a failed parse", "", m.from);
	} else {
		bad += !same(name, "message_id", e.val[K_MID], m.message_id ? m.message_id : "none");
		bad += !same(name, "from", e.val[K_FROM], m.from);
		bad += !same(name, "from_name", e.val[K_NAME], m.from_name);
		bad += !same(name, "subject", e.val[K_SUBJECT], m.subject);
		bad += !same(name, "automatic", e.val[K_AUTO],
		             m.automatic ? inmail_auto_name(m.automatic) : "none");
		buf[0] = '\0';
		for (size_t i = 0; i < m.ntokens; i++)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? " " : "",
			         m.tokens[i]);
		bad += !same(name, "tokens", e.val[K_TOKENS], buf);
		bad += !same(name, "plus_other", e.val[K_PLUS], m.plus_other ? "1" : "0");
		bad += !same(name, "to_support", e.val[K_SUPPORT], m.to_support ? "1" : "0");
		snprintf(buf, sizeof(buf), "%zu", m.nfiles);
		bad += !same(name, "files", e.val[K_FILES], buf);
		for (size_t i = 0; i < m.nfiles && i < e.nfile; i++) {
			snprintf(buf, sizeof(buf), "%s | %s | %zu", m.files[i].name, m.files[i].ctype,
			         m.files[i].len);
			bad += !same(name, "file", e.file[i], buf);
		}
		bad += m.nfiles != e.nfile;
		snprintf(buf, sizeof(buf), "%zu", m.files_dropped);
		bad += !same(name, "files_dropped", e.val[K_DROPPED], buf);
		bad += !same(name, "text", e.val[K_TEXT], m.text);
	}
	free(raw);
	free(exp);
	arena_free(a);
	return bad;
}

static void test_corpus(void **state)
{
	DIR *d = opendir(CORPUS);
	struct dirent *de;
	int mails = 0, bad = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[256];
		if (n < 5 || n - 4 >= sizeof(name) || strcmp(de->d_name + n - 4, ".eml") != 0)
			continue;
		memcpy(name, de->d_name, n - 4);
		name[n - 4] = '\0';
		bad += check_one(name) ? 1 : 0;
		mails++;
	}
	closedir(d);
	if (bad)
		fail_msg("%d of %d corpus mails differ from their .expect", bad, mails);
	assert_true(mails >= 28);
}

/* ---- generated mails ------------------------------------------------------- */

static const char HEAD[] =
    "From: Uma <uma@example.com>\r\nTo: support@help.example.com\r\n"
    "Subject: files\r\nMessage-ID: <gen@example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b0und\"\r\n\r\n"
    "--b0und\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe files.\r\n";

/* A 20 MiB attachment, base64 in 76-column lines: parsed, named, decoded
 * byte for byte, listed; over max_bytes the same mail is too large. */
static void test_big_attachment(void **state)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const size_t size = 20u << 20;
	unsigned char *data = malloc(size);
	size_t cap = sizeof(HEAD) + size / 3 * 4 * 78 / 76 + 1024, n;
	char *raw = malloc(cap), *w;
	uint32_t x = 12345;
	struct inmail m;
	char key[65];

	assert_non_null(data);
	assert_non_null(raw);
	for (size_t i = 0; i < size; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	w = raw + sprintf(raw, "%s--b0und\r\nContent-Type: application/gzip\r\n"
	                  "Content-Transfer-Encoding: base64\r\n"
	                  "Content-Disposition: attachment; filename=\"backup.tar.gz\"\r\n\r\n",
	                  HEAD);
	for (size_t i = 0, col = 0; i < size; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < size ? data[i + 1] << 8 : 0) |
		             (i + 2 < size ? data[i + 2] : 0);
		*w++ = b64[v >> 18 & 63];
		*w++ = b64[v >> 12 & 63];
		*w++ = i + 1 < size ? b64[v >> 6 & 63] : '=';
		*w++ = i + 2 < size ? b64[v & 63] : '=';
		if ((col += 4) == 76) {
			*w++ = '\r';
			*w++ = '\n';
			col = 0;
		}
	}
	w += sprintf(w, "\r\n--b0und--\r\n");
	n = (size_t)(w - raw);
	assert_true(n < cap);

	assert_int_equal(inmail_parse(*state, raw, n, NULL, SUPPORT, 32u << 20, &m), INMAIL_OK);
	assert_int_equal(m.nfiles, 1);
	assert_string_equal(m.files[0].name, "backup.tar.gz");
	assert_string_equal(m.files[0].ctype, "application/gzip");
	assert_int_equal(m.files[0].len, size);
	assert_memory_equal(m.files[0].data, data, size);
	assert_string_equal(m.text, "The files.");   /* mailin.c says what was not kept */

	assert_int_equal(inmail_parse(*state, raw, n, NULL, SUPPORT, 10u << 20, &m),
	                 INMAIL_TOO_LARGE);
	crypto_sha256_hex(raw, n, key);
	assert_string_equal(m.key, key);
	assert_int_equal(m.nfiles, 0);
	free(raw);
	free(data);
}

/* Past INMAIL_FILES_MAX parts with a filename are counted, not kept (the
 * text does not list them: mailin.c does).  Inline images with a filename
 * count as files. */
static void test_many_files(void **state)
{
	char *raw = malloc(64 * 1024), *w = raw;
	struct inmail m;
	const char *t;
	int lines = 0;

	assert_non_null(raw);
	w += sprintf(w, "%s", HEAD);
	for (int i = 0; i < INMAIL_FILES_MAX + 8; i++)
		w += sprintf(w, "--b0und\r\nContent-Type: image/png\r\nContent-Disposition: inline;"
		             " filename=\"img%02d.png\"\r\n\r\nPNG%d\r\n", i, i);
	w += sprintf(w, "--b0und--\r\n");
	assert_int_equal(inmail_parse(*state, raw, (size_t)(w - raw), NULL, SUPPORT, 1 << 20, &m),
	                 INMAIL_OK);
	assert_int_equal(m.nfiles, INMAIL_FILES_MAX);
	assert_int_equal(m.files_dropped, 8);
	assert_string_equal(m.files[3].name, "img03.png");
	assert_int_equal(m.files[3].len, 4);
	assert_memory_equal(m.files[3].data, "PNG3", 4);
	for (t = m.text; (t = strstr(t, "was not kept")); t++)
		lines++;
	assert_int_equal(lines, 0);
	free(raw);
}

/* parse: a mail from a literal with one header block and body. */
static int parse(struct arena *a, const char *mail, const char *envelope, struct inmail *m)
{
	return inmail_parse(a, mail, strlen(mail), envelope, SUPPORT, 1 << 20, m);
}

static void test_automatic(void **state)
{
	struct inmail m;
	static const char plain[] =
	    "From: Val <val@example.com>\r\nReturn-Path: <>\r\nTo: support@help.example.com\r\n"
	    "Subject: x\r\n\r\nHello\r\n";

	/* an envelope sender given wins over Return-Path */
	assert_int_equal(parse(*state, plain, "val@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NONE);
	assert_int_equal(parse(*state, plain, NULL, &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NULL_SENDER);
	assert_int_equal(parse(*state, plain, "", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NULL_SENDER);
	assert_int_equal(parse(*state, plain, "MAILER-DAEMON@mx.example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_DAEMON);
	assert_string_equal(inmail_auto_name(m.automatic), "daemon");
	assert_int_equal(parse(*state, plain, "PostMaster", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_DAEMON);

	assert_int_equal(parse(*state, "From: a@example.com\r\nAuto-Submitted: No\r\n\r\nx\r\n",
	                       "a@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NONE);
	assert_int_equal(parse(*state, "From: a@example.com\r\nAuto-Submitted: no; x=1\r\n\r\nx\r\n",
	                       "a@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NONE);
	assert_int_equal(parse(*state, "From: a@example.com\r\nAuto-Submitted: Auto-Generated\r\n"
	                       "Precedence: bulk\r\n\r\nx\r\n", "a@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_AUTO_SUBMITTED);
	assert_string_equal(inmail_auto_name(m.automatic), "auto_submitted");
	assert_int_equal(parse(*state, "From: a@example.com\r\nPrecedence: List\r\n\r\nx\r\n",
	                       "a@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_PRECEDENCE);
	assert_int_equal(parse(*state, "From: a@example.com\r\nPrecedence: first-class\r\n\r\nx\r\n",
	                       "a@example.com", &m), INMAIL_OK);
	assert_int_equal(m.automatic, IA_NONE);
	assert_int_equal(parse(*state, "From: a@example.com\r\nX-Autoreply: yes\r\n\r\nx\r\n", "", &m),
	                 INMAIL_OK);
	assert_int_equal(m.automatic, IA_X_AUTOREPLY);
	assert_string_equal(inmail_auto_name(IA_NONE), "");
	assert_string_equal(inmail_auto_name(IA_PRECEDENCE), "precedence");
	assert_string_equal(inmail_auto_name(IA_X_AUTOREPLY), "x_autoreply");
	assert_string_equal(inmail_auto_name(IA_NULL_SENDER), "null_sender");
}

static void test_recipients(void **state)
{
	struct inmail m;

	assert_int_equal(parse(*state, "From: a@example.com\r\nTo: Team: support+" T1
	                       "@help.example.com, support+x@help.example.com;\r\n\r\nx\r\n", NULL,
	                       &m), INMAIL_OK);
	assert_int_equal(m.ntokens, 1);
	assert_string_equal(m.tokens[0], T1);
	assert_int_equal(m.plus_other, 1);
	assert_int_equal(m.to_support, 0);
	/* a token one character short or long is not one */
	assert_int_equal(parse(*state, "From: a@example.com\r\nTo: support+k3v9q2m7x1b8n4c6z5w0r2t"
	                       "@help.example.com\r\nCc: support+" T1 "0@help.example.com\r\n\r\nx\r\n",
	                       NULL, &m), INMAIL_OK);
	assert_int_equal(m.ntokens, 0);
	assert_int_equal(m.plus_other, 1);
	/* another domain or local part is not ours */
	assert_int_equal(parse(*state, "From: a@example.com\r\nTo: support+" T1 "@example.com, "
	                       "supporter+" T1 "@help.example.com\r\n\r\nx\r\n", NULL, &m), INMAIL_OK);
	assert_int_equal(m.ntokens, 0);
	assert_int_equal(m.plus_other + m.to_support, 0);
	/* no support address: nothing is looked at */
	static const char mail[] = "From: a@x.com\r\nTo: support+" T1 "@help.example.com\r\n\r\nx";
	assert_int_equal(inmail_parse(*state, mail, strlen(mail), NULL, "", 1 << 20, &m), INMAIL_OK);
	assert_int_equal(m.ntokens, 0);
}

/* fuzz_mail found it: "Ann Smith \x9a<...>" gave the display name a
 * trailing space (the space was written before the control character that
 * followed it was dropped) */
static void test_display_name_space_before_control_dropped(void **state)
{
	struct inmail m;

	assert_int_equal(parse(*state, "From: Ann Smith \x9a<ann@example.net>\r\nTo: x@y.z\r\n\r\nx\r\n",
	                       NULL, &m), INMAIL_OK);
	assert_string_equal(m.from, "ann@example.net");
	size_t n = strlen(m.from_name);
	assert_true(n > 0 && m.from_name[n - 1] != ' ');
	assert_memory_equal(m.from_name, "Ann Smith", 9);
}

static void test_unparseable(void **state)
{
	struct inmail m;

	assert_int_equal(parse(*state, "Subject: nothing else\r\n\r\n\r\n", NULL, &m),
	                 INMAIL_UNPARSEABLE);
	assert_int_equal(parse(*state, "", NULL, &m), INMAIL_UNPARSEABLE);
	assert_int_equal(parse(*state, "\x89PNG\r\n\x1a\n\0\0", NULL, &m), INMAIL_UNPARSEABLE);
	assert_int_equal(parse(*state, "From: a@example.com\r\nSubject: cut", NULL, &m),
	                 INMAIL_UNPARSEABLE);
	/* a From and no body: parsed, nothing to say */
	assert_int_equal(parse(*state, "From: a@example.com\r\n\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "");
	/* a body without From: parsed, from is "" */
	assert_int_equal(parse(*state, "Subject: s\r\n\r\nbody\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.from, "");
	assert_string_equal(m.text, "body");
}

/* Charsets: none said (latin1 bytes are windows-1252, UTF-8 stays), a
 * bogus one, invalid UTF-8 replaced, control characters dropped. */
static void test_charsets(void **state)
{
	struct inmail m;

	assert_int_equal(parse(*state, "From: a@example.com\r\n\r\nsch\xf6n \x93quoted\x94\r\n",
	                       NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "sch\xc3\xb6n \xe2\x80\x9cquoted\xe2\x80\x9d");
	assert_int_equal(parse(*state, "From: a@example.com\r\nContent-Type: text/plain; "
	                       "charset=x-bogus\r\n\r\nsch\xc3\xb6n\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "sch\xc3\xb6n");
	assert_int_equal(parse(*state, "From: a@example.com\r\nContent-Type: text/plain; "
	                       "charset=utf-8\r\n\r\na\xff" "b\xc3(c\x01\x7f\x1b[1m\tx\r\ny\rz\r\n",
	                       NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "a\xef\xbf\xbd" "b\xef\xbf\xbd(c[1m\tx\ny\nz");
	assert_int_equal(parse(*state, "From: a@example.com\r\nContent-Type: text/plain; "
	                       "charset=windows-1252\r\n\r\n\x80 5 \x81\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "\xe2\x82\xac 5 \xef\xbf\xbd");
	/* header text: 8-bit bytes, controls and folding on one line */
	assert_int_equal(parse(*state, "From: \"A\x01 B\" <A@Example.COM>\r\nSubject:  one\r\n"
	                       "\t two \x7f three\r\n\r\nx\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.subject, "one two three");
	assert_string_equal(m.from, "a@example.com");
	assert_string_equal(m.from_name, "A B");
}

/* ---- inmail_strip_quote ------------------------------------------------------ */

static void strip_is(const char *in, const char *want)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", in);
	char *got = inmail_strip_quote(buf);
	if (strcmp(got, want) != 0)
		fail_msg("strip_quote(\"%s\")\n  want \"%s\"\n  got  \"%s\"", in, want, got);
}

static void test_strip_quote(void **state)
{
	(void)state;
	strip_is("", "");
	strip_is("  \n\n", "");
	strip_is("\n\n  Hello\n\nthere  \n\n", "Hello\n\nthere");
	strip_is("Yes.\n-- Reply above this line to answer ticket #12 --\nold", "Yes.");
	strip_is("Yes.\n>> -- Reply above this line to answer ticket #9 --", "Yes.");
	strip_is("Yes.\n   -- Reply above this line to answer ticket #12 --  \nold", "Yes.");
	strip_is("Yes.\n-- Reply above this line to answer ticket # --\nkept", "Yes.\n-- Reply "
	         "above this line to answer ticket # --\nkept");
	strip_is("Fine.\n\nOn Tue, 1 Dec 2026 at 10:00, Support <s@x> wrote:\n> old", "Fine.");
	strip_is("Fine.\n\nOn Tue, 1 Dec 2026 at 10:00, Support <\ns@x> wrote:\nold", "Fine.");
	strip_is("On Monday it broke.\nThen it worked.", "On Monday it broke.\nThen it worked.");
	strip_is("Fine.\n\n-----Original Message-----\nFrom: x\n", "Fine.");
	strip_is("Fine.\n\n----- original message -----\nold", "Fine.");
	strip_is("Fine.\nFrom: Support <s@x>\nSent: Monday\nTo: me\n", "Fine.");
	strip_is("Fine.\nFrom: Support <s@x>\nTo: me\nCc: you\nSent: Monday\n", "Fine.");
	strip_is("From: the start I had doubts.\nIt works.", "From: the start I had doubts.\n"
	         "It works.");
	strip_is("Fine.\n______________\nFrom: S\nSent: M\n", "Fine.");
	strip_is("Answer\n> quoted\n> more\nafter\n> again", "Answer");
	strip_is("> all quoted", "");
	strip_is("Text\n-- \nSig\n", "Text");
	strip_is("Text\n--\nSig", "Text");
	strip_is("Text\n-- \nnot the sig\n-- \nSig", "Text\n-- \nnot the sig");
	strip_is("Text\n---\nkept", "Text\n---\nkept");
	strip_is("a -> b\nc", "a -> b\nc");
}

/* ---- inmail_html_text -------------------------------------------------------- */

static void html_is(void **state, const char *in, const char *want)
{
	char *got = inmail_html_text(*state, in, strlen(in));

	if (strcmp(got, want) != 0)
		fail_msg("html_text(\"%s\")\n  want \"%s\"\n  got  \"%s\"", in, want, got);
}

static void test_html_text(void **state)
{
	html_is(state, "", "");
	html_is(state, "<p>One</p><p>Two<br>Three</p>", "One\n\nTwo\nThree");
	html_is(state, "<html><head><title>T</title><style>p{x:1}</style></head><body>"
	        "<script>var a = '<p>x</p>';</script>Body</body></html>", "Body");
	html_is(state, "<head><meta charset=utf-8><body>After a head never closed", "After a head "
	        "never closed");
	html_is(state, "a<!-- <p>no</p> -->b<!DOCTYPE x><?xml x?>c", "abc");
	html_is(state, "&amp;&lt;&gt;&quot;&#39;&apos;&nbsp;x&#233;&#xE9;&#X263a;&euro;&hellip;",
	        "&<>\"'' x\xc3\xa9\xc3\xa9\xe2\x98\xba\xe2\x82\xac\xe2\x80\xa6");
	html_is(state, "&#0;&#xD800;&#x110000;&#12a;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	        "\xef\xbf\xbd");
	html_is(state, "&bogus; & &amp", "&bogus; & &amp");
	html_is(state, "a < b and c<d", "a < b and c");
	html_is(state, "x <a href=\"y>z\" title='q>'>link</a> y", "x link y");
	html_is(state, "  lots   of \n\t space  ", "lots of space");
	html_is(state, "x<pre>  keep\n    this</pre>after", "x\n  keep\n    this\nafter");
	html_is(state, "&nbsp; <p> \x0b one\x01 </p>", "one");
	html_is(state, "<ul><li>a</li><li>b</li></ul><table><tr><td>1</td><td>2</td></tr></table>",
	        "a\nb\n1 2");
	html_is(state, "<div>a</div><div><br></div><div><br></div><div><br></div><div>b</div>",
	        "a\n\nb");
	html_is(state, "New<blockquote>old<br>older<blockquote>oldest</blockquote></blockquote>",
	        "New\n> old\n> older\n>> oldest");
	html_is(state, "<div>New</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon,"
	        " X wrote:<br></div><blockquote class=\"gmail_quote\">old</blockquote></div>after",
	        "New\n> On Mon, X wrote:\n>> old\nafter");
	html_is(state, "<h1>T</h1>x<hr>y", "T\n\nx\ny");
	html_is(state, "<b>From:</b> S<br><b>Sent:</b> M", "From: S\nSent: M");
	html_is(state, "unclosed <div class=\"a", "unclosed");
	html_is(state, "bad \xff utf8", "bad \xef\xbf\xbd utf8");
}

/* HTML-only mail: the quote in a blockquote is cut like a '>' quote. */
static void test_html_reply(void **state)
{
	struct inmail m;

	assert_int_equal(parse(*state, "From: a@example.com\r\nContent-Type: text/html\r\n\r\n"
	                       "<div dir=ltr>Works now.<br>-- <br>Ann</div><div class=gmail_quote>"
	                       "<div>On Tue, 1 Dec 2026 at 10:00, Support &lt;s@x&gt; wrote:</div>"
	                       "<blockquote>old text</blockquote></div>\r\n", NULL, &m), INMAIL_OK);
	assert_string_equal(m.text, "Works now.");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test_setup_teardown(test_big_attachment, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_many_files, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_automatic, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_recipients, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_display_name_space_before_control_dropped,
		    arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_unparseable, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_charsets, arena_setup, arena_teardown),
		cmocka_unit_test(test_strip_quote),
		cmocka_unit_test_setup_teardown(test_html_text, arena_setup, arena_teardown),
		cmocka_unit_test_setup_teardown(test_html_reply, arena_setup, arena_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
