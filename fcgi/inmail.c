/*
 * inmail.c — one inbound mail (RFC 5322, MIME) parsed with GMime 3 and
 * judged, without the database: README "Email channel".
 *
 * Rules:
 * - More than max_bytes: INMAIL_TOO_LARGE, nothing parsed.  GMime finds no
 *   message, the header never ends (no blank line: cut inside the header),
 *   no header at all, or neither a From mailbox nor any body byte:
 *   INMAIL_UNPARSEABLE.  A body cut short (mid-base64, a multipart without
 *   its closing boundary) parses as far as it goes.
 * - key: SHA-256 hex of the Message-ID (without <>), else of the raw bytes.
 * - from: the first From mailbox, ASCII lower-cased; from_name its display
 *   name; subject RFC 2047 decoded, on one line, trimmed.  Every string is
 *   valid UTF-8 (invalid bytes become U+FFFD) without control characters
 *   (text keeps LF and TAB).
 * - automatic, tested in this order: Auto-Submitted present and not "no";
 *   Precedence bulk, junk or list; X-Autoreply present; the null envelope
 *   sender (without one: Return-Path <>); a From or envelope local part
 *   MAILER-DAEMON or postmaster.
 * - To, Cc and every Delivered-To: LOCAL+TOKEN@DOMAIN of the support address
 *   gives a reply token when TOKEN is INMAIL_TOKEN_LEN of [a-z0-9]
 *   (deduplicated), any other +X sets plus_other, LOCAL@DOMAIN itself
 *   to_support.  LOCAL compares case-insensitively, DOMAIN too.
 * - text: the first text/plain part that is no attachment, else the first
 *   such text/html as text; decoded, converted from its charset (an unknown
 *   or missing one: UTF-8 when valid, else windows-1252), LF line ends, the
 *   quote and signature cut.  Parts with a filename are files[] (past
 *   INMAIL_FILES_MAX only counted in files_dropped); mailin.c decides which
 *   are kept and says so in the message.
 */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "extern.h"

static const char *const inmail_auto_names[IA__MAX] = {
	[IA_NONE] = "", [IA_AUTO_SUBMITTED] = "auto_submitted", [IA_PRECEDENCE] = "precedence",
	[IA_X_AUTOREPLY] = "x_autoreply", [IA_NULL_SENDER] = "null_sender", [IA_DAEMON] = "daemon",
};

const char *inmail_auto_name(enum inmail_auto x)
{
	return (unsigned)x < IA__MAX ? inmail_auto_names[x] : "";
}

/* g_mime_init once per process (the workers are single-threaded). */
static void inmail_init(void)
{
	static int done;

	if (!done) {
		g_mime_init();
		done = 1;
	}
}

/* ---- UTF-8 and text hygiene ------------------------------------------- */

/* inmail_seq: the length of the valid UTF-8 sequence at s (left bytes),
 * 0 when it is not one (NUL included). */
static size_t inmail_seq(const unsigned char *s, size_t left)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;

	return n <= left && utf8_valid((const char *)s, n) ? n : 0;
}

static int inmail_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* inmail_clean: s[0..len) as valid UTF-8 in the arena.  Invalid bytes
 * become U+FFFD; CRLF and a lone CR become LF; NUL and the other control
 * characters (C0 but LF and TAB, DEL, C1) are dropped.  one_line: runs of
 * whitespace and C0 controls become one space and the ends are trimmed. */
static char *inmail_clean(struct arena *a, const char *str, size_t len, int one_line)
{
	const unsigned char *s = (const unsigned char *)str;
	char *out = arena_alloc(a, len * 3 + 1), *w = out;
	int space = 0;

	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		size_t n = c < 0x80 ? 1 : inmail_seq(s + i, len - i);
		if (c == '\r' && !one_line) {
			*w++ = '\n';
			i += (i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
			continue;
		}
		if (one_line && (c < 0x20 || c == 0x7f || c == ' ')) {
			space = w > out;
			i++;
			continue;
		}
		if (n != 0 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
		               (c == 0xc2 && s[i + 1] < 0xa0))) {
			i += n;         /* a control character: dropped, a pending space kept */
			continue;
		}
		if (space) {    /* a space only between two kept characters */
			*w++ = ' ';
			space = 0;
		}
		if (n == 0) {
			memcpy(w, "\xef\xbf\xbd", 3);
			w += 3;
			i++;
		} else {
			memcpy(w, s + i, n);
			w += n;
			i += n;
		}
	}
	*w = '\0';
	return out;
}

/* inmail_iconv: in[0..len) from charset cd to UTF-8 in a g_malloc buffer
 * (*outlen bytes, NUL-terminated); a byte iconv refuses becomes U+FFFD. */
static char *inmail_iconv(iconv_t cd, char *in, size_t len, size_t *outlen)
{
	size_t cap = len * 2 + 32, used = 0, ol;
	char *buf = g_malloc(cap), *op;

	while (len > 0) {
		if (cap - used < 16) {
			cap *= 2;
			buf = g_realloc(buf, cap);
		}
		op = buf + used;
		ol = cap - used - 4;    /* room for U+FFFD and the NUL */
		size_t r = iconv(cd, &in, &len, &op, &ol);
		used = (size_t)(op - buf);
		if (r != (size_t)-1)
			continue;
		if (errno == E2BIG) {
			cap *= 2;
			buf = g_realloc(buf, cap);
			continue;
		}
		memcpy(buf + used, "\xef\xbf\xbd", 3);      /* EILSEQ, EINVAL */
		used += 3;
		in++;
		len--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	if (cap - used < 64) {
		cap += 64;
		buf = g_realloc(buf, cap);
	}
	op = buf + used;
	ol = cap - used - 1;
	iconv(cd, NULL, NULL, &op, &ol);        /* back to the initial shift state */
	used = (size_t)(op - buf);
	buf[used] = '\0';
	*outlen = used;
	return buf;
}

/* inmail_to_utf8: decoded body bytes in charset (NULL: none given) as clean
 * UTF-8 text with LF line ends.  UTF-8 is taken as it is (invalid bytes
 * replaced); US-ASCII, none, or a charset iconv does not know: UTF-8 when
 * the bytes are valid UTF-8, else windows-1252 (latin1 with the quotes). */
static char *inmail_to_utf8(struct arena *a, char *in, size_t len, const char *charset)
{
	iconv_t cd = (iconv_t)-1;
	size_t n;
	char *u, *res;

	if (charset && (strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0))
		return inmail_clean(a, in, len, 0);
	if (charset && strcasecmp(charset, "us-ascii") != 0 && strcasecmp(charset, "ascii") != 0)
		cd = g_mime_iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1 && utf8_valid(in, len))
		return inmail_clean(a, in, len, 0);
	if (cd == (iconv_t)-1)
		cd = g_mime_iconv_open("UTF-8", "windows-1252");
	if (cd == (iconv_t)-1)
		return inmail_clean(a, in, len, 0);
	u = inmail_iconv(cd, in, len, &n);
	g_mime_iconv_close(cd);
	res = inmail_clean(a, u, n, 0);
	g_free(u);
	return res;
}

/* ---- MIME parts --------------------------------------------------------- */

/* inmail_part_data: the part's content, transfer encoding undone, in the
 * arena (NUL-terminated, *len bytes without it). */
static char *inmail_part_data(struct arena *a, GMimePart *p, size_t *len)
{
	GMimeDataWrapper *w = g_mime_part_get_content(p);
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *b;
	char *out;

	if (w)
		g_mime_data_wrapper_write_to_stream(w, mem);
	b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	out = arena_strndup(a, b->len ? (const char *)b->data : "", b->len);
	*len = b->len;
	g_object_unref(mem);
	return out;
}

/* The walk over the parts: the text candidates and the files. */
struct inmail_walk {
	struct arena *a;
	struct inmail *out;
	GMimePart *plain, *html;
};

/* inmail_add_file: a part with a filename becomes a files[] entry. */
static void inmail_add_file(struct inmail_walk *w, GMimePart *p, const char *filename)
{
	struct inmail *out = w->out;
	struct inmail_file *f;
	const char *name;
	char *ctype;

	if (out->nfiles >= INMAIL_FILES_MAX) {
		out->files_dropped++;
		return;
	}
	name = inmail_clean(w->a, filename, strlen(filename), 1);
	f = &out->files[out->nfiles++];
	f->name = name[0] ? name : "unnamed";
	ctype = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(GMIME_OBJECT(p)));
	f->ctype = inmail_clean(w->a, ctype, strlen(ctype), 1);
	g_free(ctype);
	f->data = (const unsigned char *)inmail_part_data(w->a, p, &f->len);
}

/* inmail_walk_part: g_mime_message_foreach's callback for every part. */
static void inmail_walk_part(GMimeObject *parent, GMimeObject *obj, gpointer data)
{
	struct inmail_walk *w = data;
	GMimePart *p;
	GMimeContentType *ct;
	const char *filename;

	(void)parent;
	if (!GMIME_IS_PART(obj))
		return;
	p = GMIME_PART(obj);
	filename = g_mime_part_get_filename(p);
	if (filename && filename[0]) {
		inmail_add_file(w, p, filename);
		return;
	}
	if (g_mime_part_is_attachment(p))
		return;
	ct = g_mime_object_get_content_type(obj);
	if (!w->plain && g_mime_content_type_is_type(ct, "text", "plain"))
		w->plain = p;
	else if (!w->html && g_mime_content_type_is_type(ct, "text", "html"))
		w->html = p;
}

/* inmail_part_text: a text part's content as clean UTF-8. */
static char *inmail_part_text(struct arena *a, GMimePart *p)
{
	size_t len;
	char *raw = inmail_part_data(a, p, &len);
	const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(p), "charset");

	return inmail_to_utf8(a, raw, len, cs && cs[0] ? cs : NULL);
}

/* inmail_text: the new text of the mail. */
static const char *inmail_text(struct inmail_walk *w)
{
	char *t = arena_strdup(w->a, "");

	if (w->plain)
		t = inmail_part_text(w->a, w->plain);
	else if (w->html) {
		char *h = inmail_part_text(w->a, w->html);
		t = inmail_html_text(w->a, h, strlen(h));
	}
	return inmail_strip_quote(t);
}

/* ---- addresses ---------------------------------------------------------- */

/* inmail_first_mailbox: the first mailbox of l, groups opened; NULL. */
static InternetAddressMailbox *inmail_first_mailbox(InternetAddressList *l)
{
	int n = l ? internet_address_list_length(l) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		InternetAddressMailbox *mb = NULL;
		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			mb = INTERNET_ADDRESS_MAILBOX(ia);
		else if (INTERNET_ADDRESS_IS_GROUP(ia))
			mb = inmail_first_mailbox(
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)));
		if (mb && internet_address_mailbox_get_addr(mb))
			return mb;
	}
	return NULL;
}

/* inmail_local_is: 1 when the local part of addr (before the last '@';
 * all of it without one) is name, ignoring ASCII case. */
static int inmail_local_is(const char *addr, const char *name)
{
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);

	return n == strlen(name) && strncasecmp(addr, name, n) == 0;
}

/* inmail_token_shaped: INMAIL_TOKEN_LEN characters of [a-z0-9]. */
static int inmail_token_shaped(const char *s, size_t n)
{
	if (n != INMAIL_TOKEN_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

static void inmail_add_token(struct arena *a, struct inmail *out, const char *t)
{
	for (size_t i = 0; i < out->ntokens; i++)
		if (memcmp(out->tokens[i], t, INMAIL_TOKEN_LEN) == 0)
			return;
	if (out->ntokens < INMAIL_TOKENS_MAX)
		out->tokens[out->ntokens++] = arena_strndup(a, t, INMAIL_TOKEN_LEN);
}

/* inmail_recipient: one recipient address against support (LOCAL@DOMAIN). */
static void inmail_recipient(struct arena *a, struct inmail *out, const char *addr,
                             const char *support)
{
	const char *at = strrchr(addr, '@'), *sat = strrchr(support, '@'), *plus;
	size_t slen, blen;

	if (!at || !sat || strcasecmp(at + 1, sat + 1) != 0)
		return;
	slen = (size_t)(sat - support);
	plus = memchr(addr, '+', (size_t)(at - addr));
	blen = plus ? (size_t)(plus - addr) : (size_t)(at - addr);
	if (blen != slen || strncasecmp(addr, support, slen) != 0)
		return;
	if (!plus)
		out->to_support = 1;
	else if (inmail_token_shaped(plus + 1, (size_t)(at - plus - 1)))
		inmail_add_token(a, out, plus + 1);
	else
		out->plus_other = 1;
}

/* inmail_recipients: every mailbox of l (groups opened). */
static void inmail_recipients(struct arena *a, struct inmail *out, InternetAddressList *l,
                              const char *support, int depth)
{
	int n = l ? internet_address_list_length(l) : 0;

	for (int i = 0; i < n && depth < 4; i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
			if (addr)
				inmail_recipient(a, out, addr, support);
		} else if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			inmail_recipients(a, out,
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), support,
			    depth + 1);
		}
	}
}

/* inmail_delivered_to: every Delivered-To header's addresses. */
static void inmail_delivered_to(struct arena *a, struct inmail *out, GMimeMessage *m,
                                const char *support)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int n = g_mime_header_list_get_count(hl);

	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *v = g_mime_header_get_value(h);
		if (strcasecmp(g_mime_header_get_name(h), "Delivered-To") != 0 || !v)
			continue;
		InternetAddressList *l = internet_address_list_parse(NULL, v);
		if (l) {
			inmail_recipients(a, out, l, support, 0);
			g_object_unref(l);
		}
	}
}

/* ---- automatic mail ------------------------------------------------------ */

/* inmail_header_word: the header's value up to ';', trimmed, lower-cased,
 * in the arena; NULL when the header is absent. */
static char *inmail_header_word(struct arena *a, GMimeMessage *m, const char *name)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), name);
	char *s;

	if (!v)
		return NULL;
	s = str_trim(arena_strndup(a, v, strcspn(v, ";")));
	str_lower_ascii(s);
	return s;
}

/* inmail_null_return_path: Return-Path is <> (spaces aside). */
static int inmail_null_return_path(GMimeMessage *m)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), "Return-Path");
	char c[3];
	size_t n = 0;

	if (!v)
		return 0;
	for (; *v; v++) {
		if (inmail_ws(*v))
			continue;
		if (n == 2)
			return 0;
		c[n++] = *v;
	}
	return n == 2 && c[0] == '<' && c[1] == '>';
}

static enum inmail_auto inmail_automatic(struct arena *a, GMimeMessage *m,
                                         const char *envelope, const char *from)
{
	char *v;

	if ((v = inmail_header_word(a, m, "Auto-Submitted")) && strcmp(v, "no") != 0)
		return IA_AUTO_SUBMITTED;
	if ((v = inmail_header_word(a, m, "Precedence")) &&
	    (!strcmp(v, "bulk") || !strcmp(v, "junk") || !strcmp(v, "list")))
		return IA_PRECEDENCE;
	if (g_mime_object_get_header(GMIME_OBJECT(m), "X-Autoreply"))
		return IA_X_AUTOREPLY;
	if (envelope ? envelope[0] == '\0' : inmail_null_return_path(m))
		return IA_NULL_SENDER;
	if (inmail_local_is(from, "mailer-daemon") || inmail_local_is(from, "postmaster"))
		return IA_DAEMON;
	if (envelope && (inmail_local_is(envelope, "mailer-daemon") ||
	                 inmail_local_is(envelope, "postmaster")))
		return IA_DAEMON;
	return IA_NONE;
}

/* ---- the message ---------------------------------------------------------- */

/* inmail_unparseable: the header never ended, is empty, or the mail has
 * neither a From mailbox nor a byte of body. */
static int inmail_unparseable(GMimeParser *p, GMimeMessage *m, const char *raw, size_t len)
{
	gint64 end = g_mime_parser_get_headers_end(p);

	if (end < 0 || (guint64)end > len)
		return 1;
	if (g_mime_header_list_get_count(g_mime_object_get_header_list(GMIME_OBJECT(m))) == 0)
		return 1;
	if (inmail_first_mailbox(g_mime_message_get_from(m)))
		return 0;
	for (size_t i = (size_t)end; i < len; i++)
		if (!inmail_ws(raw[i]))
			return 0;
	return 1;
}

/* inmail_fill: everything but the key from a parsed message. */
static void inmail_fill(struct arena *a, GMimeMessage *m, const char *envelope,
                        const char *support, struct inmail *out)
{
	InternetAddressMailbox *mb = inmail_first_mailbox(g_mime_message_get_from(m));
	const char *subject = g_mime_message_get_subject(m);
	struct inmail_walk w = { .a = a, .out = out };

	if (mb) {
		const char *addr = internet_address_mailbox_get_addr(mb);
		const char *name = internet_address_get_name(INTERNET_ADDRESS(mb));
		char *f = inmail_clean(a, addr, strlen(addr), 1);
		str_lower_ascii(f);
		out->from = f;
		out->from_name = name ? inmail_clean(a, name, strlen(name), 1) : "";
	}
	if (subject)
		out->subject = inmail_clean(a, subject, strlen(subject), 1);
	out->automatic = inmail_automatic(a, m, envelope, out->from);
	if (support && strchr(support, '@')) {
		inmail_recipients(a, out, g_mime_message_get_to(m), support, 0);
		inmail_recipients(a, out, g_mime_message_get_cc(m), support, 0);
		inmail_delivered_to(a, out, m, support);
	}
	g_mime_message_foreach(m, inmail_walk_part, &w);
	out->text = inmail_text(&w);
}

int inmail_parse(struct arena *a, const char *raw, size_t len, const char *envelope_sender,
                 const char *support, size_t max_bytes, struct inmail *out)
{
	GMimeStream *s;
	GMimeParser *p;
	GMimeMessage *m;
	const char *mid;
	int rc = INMAIL_OK;

	memset(out, 0, sizeof(*out));
	out->from = out->from_name = out->subject = out->text = "";
	if (crypto_sha256_hex(raw, len, out->key) == -1)
		abort();        /* libcrypto out of memory: as fatal as the arena's */
	if (len > max_bytes)
		return INMAIL_TOO_LARGE;
	inmail_init();
	s = g_mime_stream_mem_new_with_buffer(raw, len);
	p = g_mime_parser_new_with_stream(s);
	m = g_mime_parser_construct_message(p, NULL);
	if (m == NULL || inmail_unparseable(p, m, raw, len)) {
		rc = INMAIL_UNPARSEABLE;
	} else {
		mid = g_mime_message_get_message_id(m);
		if (mid && (mid = inmail_clean(a, mid, strlen(mid), 1))[0]) {
			out->message_id = mid;
			if (crypto_sha256_hex(mid, strlen(mid), out->key) == -1)
				abort();
		}
		inmail_fill(a, m, envelope_sender, support, out);
	}
	if (m)
		g_object_unref(m);
	g_object_unref(p);
	g_object_unref(s);
	return rc;
}

/* ---- the reply part of a plain text ------------------------------------- */

/* A line [b, e) without its outer whitespace. */
static void inmail_trim_range(const char **b, const char **e)
{
	while (*b < *e && inmail_ws(**b))
		(*b)++;
	while (*e > *b && inmail_ws((*e)[-1]))
		(*e)--;
}

static const char *inmail_eol(const char *p)
{
	return p + strcspn(p, "\n");
}

static int inmail_starts(const char *b, const char *e, const char *prefix)
{
	size_t n = strlen(prefix);

	return (size_t)(e - b) >= n && memcmp(b, prefix, n) == 0;
}

static int inmail_ends(const char *b, const char *e, const char *suffix)
{
	size_t n = strlen(suffix);

	return (size_t)(e - b) >= n && memcmp(e - n, suffix, n) == 0;
}

/* inmail_is_marker: "-- Reply above this line to answer ticket #N --",
 * after any '>' and spaces a client quoting it put in front. */
static int inmail_is_marker(const char *b, const char *e)
{
	static const char head[] = "-- Reply above this line to answer ticket #";
	const char *d;

	while (b < e && (*b == '>' || inmail_ws(*b)))
		b++;
	inmail_trim_range(&b, &e);
	if (!inmail_starts(b, e, head) || !inmail_ends(b, e, " --"))
		return 0;
	d = b + sizeof(head) - 1;
	if (d >= e - 3)
		return 0;
	for (; d < e - 3; d++)
		if (*d < '0' || *d > '9')
			return 0;
	return 1;
}

/* inmail_is_original: Outlook's "-----Original Message-----". */
static int inmail_is_original(const char *b, const char *e)
{
	inmail_trim_range(&b, &e);
	if (!inmail_starts(b, e, "-----"))
		return 0;
	while (b < e && *b == '-')
		b++;
	while (e > b && e[-1] == '-')
		e--;
	inmail_trim_range(&b, &e);
	return e - b == 16 && strncasecmp(b, "Original Message", 16) == 0;
}

/* inmail_is_outlook: Outlook's header block: a "From: " line with a
 * "Sent: " line within the next four. */
static int inmail_is_outlook(const char *p)
{
	const char *b = p, *e = inmail_eol(p), *n = e;

	inmail_trim_range(&b, &e);
	if (!inmail_starts(b, e, "From: "))
		return 0;
	for (int i = 0; i < 4 && *n; i++) {
		const char *nb = n + 1, *ne = inmail_eol(nb);
		n = ne;
		inmail_trim_range(&nb, &ne);
		if (inmail_starts(nb, ne, "Sent: "))
			return 1;
	}
	return 0;
}

/* inmail_is_rule: a line of underscores only (Outlook's rule above its
 * header block). */
static int inmail_is_rule(const char *b, const char *e)
{
	inmail_trim_range(&b, &e);
	if (e - b < 8)
		return 0;
	for (; b < e; b++)
		if (*b != '_')
			return 0;
	return 1;
}

/* inmail_is_on_wrote: "On … wrote:" on the line [b, e) or wrapped onto the
 * line after it (next: its start, or NULL at the end). */
static int inmail_is_on_wrote(const char *b, const char *e, const char *next)
{
	const char *ne;

	if (!inmail_starts(b, e, "On "))
		return 0;
	if (inmail_ends(b, e, "wrote:"))
		return 1;
	if (!next)
		return 0;
	ne = inmail_eol(next);
	inmail_trim_range(&next, &ne);
	return next < ne && inmail_ends(next, ne, "wrote:");
}

/* inmail_is_cut: the line at p starts the quote: the reply marker, "On …
 * wrote:", Outlook's original message line or its header block (with the
 * rule above it), or a '>' line. */
static int inmail_is_cut(const char *p)
{
	const char *e = inmail_eol(p), *b = p, *next = *e ? e + 1 : NULL;

	if (inmail_is_marker(p, e) || inmail_is_original(p, e) || inmail_is_outlook(p))
		return 1;
	if (next && inmail_is_rule(p, e) && inmail_is_outlook(next))
		return 1;
	inmail_trim_range(&b, &e);
	return (b < e && *b == '>') || inmail_is_on_wrote(b, e, next);
}

/* inmail_cut_signature: from the last "-- " (or "--") line to the end. */
static void inmail_cut_signature(char *text)
{
	char *last = NULL;

	for (char *p = text; *p;) {
		char *e = p + strcspn(p, "\n");
		size_t n = (size_t)(e - p);
		if (n && p[n - 1] == '\r')
			n--;
		if ((n == 3 && memcmp(p, "-- ", 3) == 0) || (n == 2 && memcmp(p, "--", 2) == 0))
			last = p;
		p = *e ? e + 1 : e;
	}
	if (last)
		*last = '\0';
}

char *inmail_strip_quote(char *text)
{
	for (char *p = text; *p;) {
		if (inmail_is_cut(p)) {
			*p = '\0';
			break;
		}
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	inmail_cut_signature(text);
	return str_trim(text);
}

/* ---- HTML to text ---------------------------------------------------------- */

struct inmail_html {
	GString *o;
	int depth;              /* blockquote (or gmail_quote div) nesting */
	int pre;                /* inside <pre>: whitespace kept */
	int at_start;           /* nothing written on the current line yet */
	int space;              /* whitespace seen since the last text */
	int divs;               /* open <div> elements */
	int quote_div;          /* the divs count at the gmail_quote div, 0 none */
};

static void inmail_html_nl(struct inmail_html *h)
{
	g_string_append_c(h->o, '\n');
	h->at_start = 1;
	h->space = 0;
}

static void inmail_html_line(struct inmail_html *h)
{
	if (!h->at_start)
		inmail_html_nl(h);
}

/* inmail_html_put: text bytes; a quoted line starts with '>' per level. */
static void inmail_html_put(struct inmail_html *h, const char *s, size_t n)
{
	if (h->at_start && h->depth > 0) {
		for (int i = 0; i < h->depth && i < 8; i++)
			g_string_append_c(h->o, '>');
		g_string_append_c(h->o, ' ');
	} else if (h->space && !h->at_start) {
		g_string_append_c(h->o, ' ');
	}
	g_string_append_len(h->o, s, (gssize)n);
	h->at_start = 0;
	h->space = 0;
}

/* The named entities decoded (others stay as they are). */
static const struct {
	const char *name;
	const char *utf8;
} inmail_entities[] = {
	{ "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" }, { "apos", "'" },
	{ "nbsp", " " }, { "copy", "\xc2\xa9" }, { "reg", "\xc2\xae" },
	{ "trade", "\xe2\x84\xa2" }, { "hellip", "\xe2\x80\xa6" }, { "mdash", "\xe2\x80\x94" },
	{ "ndash", "\xe2\x80\x93" }, { "lsquo", "\xe2\x80\x98" }, { "rsquo", "\xe2\x80\x99" },
	{ "ldquo", "\xe2\x80\x9c" }, { "rdquo", "\xe2\x80\x9d" }, { "laquo", "\xc2\xab" },
	{ "raquo", "\xc2\xbb" }, { "bull", "\xe2\x80\xa2" }, { "middot", "\xc2\xb7" },
	{ "euro", "\xe2\x82\xac" }, { "pound", "\xc2\xa3" }, { "yen", "\xc2\xa5" },
	{ "cent", "\xc2\xa2" }, { "sect", "\xc2\xa7" }, { "deg", "\xc2\xb0" },
	{ "times", "\xc3\x97" }, { "divide", "\xc3\xb7" }, { "shy", "" },
	{ "zwnj", "" }, { "zwj", "" }, { "auml", "\xc3\xa4" }, { "ouml", "\xc3\xb6" },
	{ "uuml", "\xc3\xbc" }, { "Auml", "\xc3\x84" }, { "Ouml", "\xc3\x96" },
	{ "Uuml", "\xc3\x9c" }, { "szlig", "\xc3\x9f" }, { "eacute", "\xc3\xa9" },
	{ "egrave", "\xc3\xa8" }, { "agrave", "\xc3\xa0" }, { "aacute", "\xc3\xa1" },
	{ "ccedil", "\xc3\xa7" }, { "ntilde", "\xc3\xb1" }, { "oacute", "\xc3\xb3" },
	{ "iacute", "\xc3\xad" }, { "uacute", "\xc3\xba" },
};

/* inmail_html_cp: a numeric reference's code point; U+FFFD for none. */
static unsigned long inmail_html_cp(const char *s, size_t n)
{
	unsigned long cp = 0;
	int hex = n > 1 && (s[1] == 'x' || s[1] == 'X');
	size_t i = hex ? 2 : 1;

	if (i >= n)
		return 0xfffd;
	for (; i < n; i++) {
		int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0'
		      : hex && (s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f' ? (s[i] | 0x20) - 'a' + 10
		      : -1;
		if (d < 0)
			return 0xfffd;
		cp = cp * (hex ? 16 : 10) + (unsigned long)d;
		if (cp > 0x10ffff)
			return 0xfffd;
	}
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
		return 0xfffd;
	return cp;
}

static void inmail_html_putcp(struct inmail_html *h, unsigned long cp)
{
	char u[4];
	size_t n;

	if (cp == '\t' || cp == '\n' || cp == '\r' || cp == ' ') {
		h->space = 1;
		return;
	}
	if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
		return;
	if (cp == 0xa0)
		cp = ' ';
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	inmail_html_put(h, u, n);
}

/* inmail_html_entity: the reference at s[i] == '&'; returns the next index. */
static size_t inmail_html_entity(struct inmail_html *h, const char *s, size_t len, size_t i)
{
	size_t j = i + 1;

	while (j < len && j - i < 12 && s[j] != ';' && s[j] != '&' && !inmail_ws(s[j]) &&
	       s[j] != '<')
		j++;
	if (j < len && s[j] == ';' && j > i + 1) {
		const char *name = s + i + 1;
		size_t n = j - i - 1;
		if (name[0] == '#') {
			inmail_html_putcp(h, inmail_html_cp(name, n));
			return j + 1;
		}
		for (size_t k = 0; k < sizeof(inmail_entities) / sizeof(inmail_entities[0]); k++)
			if (strlen(inmail_entities[k].name) == n &&
			    memcmp(inmail_entities[k].name, name, n) == 0) {
				const char *u = inmail_entities[k].utf8;
				if (u[0])
					inmail_html_put(h, u, strlen(u));
				return j + 1;
			}
	}
	inmail_html_put(h, "&", 1);
	return i + 1;
}

/* inmail_html_find: the index of needle (ASCII case ignored) from i; len
 * when absent. */
static size_t inmail_html_find(const char *s, size_t len, size_t i, const char *needle)
{
	size_t n = strlen(needle);

	for (; i + n <= len; i++)
		if (strncasecmp(s + i, needle, n) == 0)
			return i;
	return len;
}

/* inmail_html_skip: past the element whose content is never text (head,
 * script, style, title), from its start tag's end at i. */
static size_t inmail_html_skip(const char *s, size_t len, size_t i, const char *name)
{
	char close[16];
	size_t end;

	snprintf(close, sizeof(close), "</%s", name);
	end = inmail_html_find(s, len, i, close);
	if (strcmp(name, "head") == 0) {
		size_t body = inmail_html_find(s, len, i, "<body");
		if (body < end)
			return body;
	}
	if (end == len)
		return len;
	end = inmail_html_find(s, len, end, ">");
	return end < len ? end + 1 : len;
}

static int inmail_name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return 1;
	return 0;
}

/* inmail_html_element: what a start or end tag does to the text. */
static void inmail_html_element(struct inmail_html *h, const char *name, int closing,
                                int gmail_quote)
{
	static const char *const lines[] = { "li", "tr", "table", "ul", "ol", "hr", "dl", "dt",
	                                     "dd", "center", "form", "section", "article",
	                                     "header", "footer", "address", "tbody", NULL };
	static const char *const paras[] = { "p", "h1", "h2", "h3", "h4", "h5", "h6", NULL };

	if (strcmp(name, "br") == 0) {
		inmail_html_nl(h);
	} else if (strcmp(name, "blockquote") == 0) {
		inmail_html_line(h);
		h->depth += closing ? (h->depth > 0 ? -1 : 0) : 1;
	} else if (strcmp(name, "div") == 0) {
		inmail_html_line(h);
		if (!closing) {
			h->divs++;
			if (gmail_quote && !h->quote_div) {
				h->quote_div = h->divs;
				h->depth++;
			}
		} else if (h->divs > 0) {
			if (h->quote_div == h->divs) {
				h->quote_div = 0;
				h->depth -= h->depth > 0;
			}
			h->divs--;
		}
	} else if (strcmp(name, "pre") == 0) {
		inmail_html_line(h);
		h->pre += closing ? (h->pre > 0 ? -1 : 0) : 1;
	} else if (inmail_name_in(name, paras)) {
		inmail_html_line(h);
		if (closing)
			inmail_html_nl(h);
	} else if (inmail_name_in(name, lines)) {
		inmail_html_line(h);
	} else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
		h->space = 1;
	}
}

/* inmail_html_tag: the markup at s[i] == '<'; returns the next index. */
static size_t inmail_html_tag(struct inmail_html *h, const char *s, size_t len, size_t i)
{
	char name[12];
	size_t j = i + 1, n = 0, attrs;
	int closing = 0, quote = 0;

	if (j + 2 < len && memcmp(s + j, "!--", 3) == 0) {
		size_t e = inmail_html_find(s, len, j + 3, "-->");
		return e < len ? e + 3 : len;
	}
	if (j < len && (s[j] == '!' || s[j] == '?')) {
		size_t e = inmail_html_find(s, len, j, ">");
		return e < len ? e + 1 : len;
	}
	if (j < len && s[j] == '/') {
		closing = 1;
		j++;
	}
	while (j < len && (((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z') ||
	                   (n > 0 && s[j] >= '0' && s[j] <= '9'))) {
		if (n < sizeof(name) - 1)
			name[n++] = (char)(s[j] | 0x20);
		j++;
	}
	if (n == 0) {           /* "a < b": text, not a tag */
		inmail_html_put(h, "<", 1);
		return i + 1;
	}
	name[n] = '\0';
	for (attrs = j; j < len && (quote || s[j] != '>'); j++)
		if (s[j] == '"' || s[j] == '\'')
			quote = quote == s[j] ? 0 : quote ? quote : s[j];
	if (!closing && inmail_name_in(name, (const char *const[]){ "head", "script", "style",
	                                                             "title", NULL }))
		return inmail_html_skip(s, len, j < len ? j + 1 : len, name);
	inmail_html_element(h, name, closing,
	    inmail_html_find(s, j, attrs, "gmail_quote") < j);
	return j < len ? j + 1 : len;
}

/* inmail_html_tidy: s made clean UTF-8, then its lines without trailing
 * blanks, no two blank lines in a row, trimmed at both ends; in the arena. */
static char *inmail_html_tidy(struct arena *a, const GString *g)
{
	const char *s = inmail_clean(a, g->str, g->len, 0);
	char *out = arena_alloc(a, strlen(s) + 1), *w = out;
	int blank = 0;

	for (const char *p = s; *p;) {
		const char *e = inmail_eol(p), *le = e;
		while (le > p && (le[-1] == ' ' || le[-1] == '\t'))
			le--;
		if (le == p) {
			blank = w > out;
		} else {
			if (w > out) {
				*w++ = '\n';
				if (blank)
					*w++ = '\n';
			}
			memcpy(w, p, (size_t)(le - p));
			w += le - p;
			blank = 0;
		}
		p = *e ? e + 1 : e;
	}
	*w = '\0';
	return str_trim(out);
}

char *inmail_html_text(struct arena *a, const char *html, size_t len)
{
	struct inmail_html h = { .o = g_string_sized_new(len + 1), .at_start = 1 };
	char *res;

	for (size_t i = 0; i < len;) {
		char c = html[i];
		if (c == '<') {
			i = inmail_html_tag(&h, html, len, i);
		} else if (c == '&') {
			i = inmail_html_entity(&h, html, len, i);
		} else if (c == '\0') {
			i++;
		} else if (inmail_ws(c) && h.pre && (c == '\n' || c == '\r')) {
			if (c == '\n' || i + 1 >= len || html[i + 1] != '\n')
				inmail_html_nl(&h);
			i++;
		} else if (inmail_ws(c) && !h.pre) {
			h.space = 1;
			i++;
		} else {
			inmail_html_put(&h, &c, 1);
			i++;
		}
	}
	res = inmail_html_tidy(a, h.o);
	g_string_free(h.o, TRUE);
	return res;
}
