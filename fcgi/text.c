/*
 * text.c — the byte-level string functions every request goes through:
 * percent-decoding (RFC 3986 §2.1), strict UTF-8 (RFC 3629 §4), the list of
 * name/value pairs the form and cookie parsers fill, and the text rules of
 * README "Accounts and security" (no control characters, the email rule).
 * Pure functions over bounded input; the fuzz targets and unit tests drive
 * them directly.
 */
#include <string.h>

#include "extern.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* pct_decode: decode s[0..len) in place and NUL-terminate.  Returns the new
 * length, or -1 for a malformed escape ("%" not followed by two hex digits).
 * plus_is_space: '+' means ' ' (form encoding). */
long pct_decode(char *s, size_t len, int plus_is_space)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			s[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			s[o++] = ' ';
		} else {
			s[o++] = c;
		}
	}
	s[o] = '\0';
	return (long)o;
}

/* utf8_valid: 1 when s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF, no NUL byte), else 0. */
int utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;      /* overlong */
			else if (c == 0xed)
				hi = 0x9f;      /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;      /* overlong */
			else if (c == 0xf4)
				hi = 0x8f;      /* > U+10FFFF */
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}

/* utf8_len: characters (code points) in a valid UTF-8 string. */
size_t utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* text_clean: turn CRLF (what browsers send for textarea newlines) into LF
 * in place; then 0 when the text has no control character other than LF and
 * TAB (a form with any other answers 422 "Invalid characters"), -1
 * otherwise. */
int text_clean(char *s)
{
	char *r = s, *w = s;
	int bad = 0;

	for (; *r; r++) {
		unsigned char c = (unsigned char)*r;
		if (c == '\r' && r[1] == '\n')
			continue;
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			bad = 1;
		*w++ = (char)c;
	}
	*w = '\0';
	return bad ? -1 : 0;
}

/* kv_add: append k=v to out, growing it in the arena (*cap: its room).
 * PARSE_OK, or PARSE_TOO_MANY past max_pairs. */
int kv_add(struct arena *a, struct kvlist *out, size_t *cap, size_t max_pairs,
           const char *k, const char *v)
{
	if (out->n >= max_pairs)
		return PARSE_TOO_MANY;
	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct kv *nv = arena_alloc(a, ncap * sizeof(*nv));
		if (out->n)
			memcpy(nv, out->v, out->n * sizeof(*nv));
		out->v = nv;
		*cap = ncap;
	}
	out->v[out->n].key = k;
	out->v[out->n].val = v;
	out->n++;
	return PARSE_OK;
}

/* kv_get: the first value for key, or NULL when absent. */
const char *kv_get(const struct kvlist *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].val;
	return NULL;
}

/* header_safe: 1 when s can go into a header line: no CR, LF or other
 * control character except TAB: nothing from a user can end a header line
 * and start another (header injection). */
int header_safe(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* email_valid: the email rule — one '@', a non-empty local part, a domain with a
 * dot (not at either end, no empty label), no spaces or control characters,
 * at most 254 bytes. 1 valid, 0 not. */
int email_valid(const char *s)
{
	const char *at = strchr(s, '@'), *dom, *dot;
	size_t len = strlen(s);

	if (len == 0 || len > 254 || at == NULL || at == s || strchr(at + 1, '@'))
		return 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		/* no spaces or controls, and none of RFC 5322's specials
		 * outside the one '@': such an address cannot be written into a
		 * To: header or an SMTP envelope without quoting */
		if (c <= 0x20 || c == 0x7f || (c < 0x80 && strchr("()<>[]:;,\\\"", c)))
			return 0;
	}
	dom = at + 1;
	dot = strchr(dom, '.');
	if (dot == NULL || dom[0] == '.' || s[len - 1] == '.' || strstr(dom, ".."))
		return 0;
	return utf8_valid(s, len);
}

/* str_is_hex: 1 when s is not NULL and is min..max lowercase hex digits
 * (session tokens, request ids), else 0. */
int str_is_hex(const char *s, size_t min, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n >= min && n <= max;
}

void str_lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* str_trim: strip ASCII whitespace at both ends, in place; returns the start. */
char *str_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

/* str_lookup: the index of s in names[0..n), or -1 when absent or NULL:
 * how a closed set's name from a row or a form becomes its enum. */
int str_lookup(const char *const *names, int n, const char *s)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* url_encode: percent-encode everything but RFC 3986 unreserved characters
 * and '/', for building query strings (arena-owned result). */
char *url_encode(struct arena *a, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = arena_alloc(a, strlen(s) * 3 + 1), *o = out;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* local_path: n when it is a same-site path for a redirect (a `next`
 * parameter never leads off the site): it starts with one '/', and holds
 * no backslash, no whitespace and no control character — browsers drop
 * TAB/CR/LF from URLs, so "/\t/evil" would become "//evil".  Else NULL. */
const char *local_path(const char *n)
{
	if (n == NULL || n[0] != '/' || n[1] == '/' || strlen(n) > 1024)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)n; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '\\')
			return NULL;
	return n;
}

/* utf8_truncate: cut a valid UTF-8 string to at most max characters, on a
 * character boundary. */
void utf8_truncate(char *s, size_t max)
{
	size_t n = 0;

	for (char *p = s; *p; p++) {
		if (((unsigned char)*p & 0xc0) != 0x80 && n++ == max) {
			*p = '\0';
			return;
		}
	}
}

/* str_fold_line: a one-line field (names, subjects: they reach mail
 * subject lines) gets TAB, CR and LF turned into spaces, in place. */
char *str_fold_line(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return s;
}

/* filename_clean: a file name as it may be stored and offered for download
 * (README "Attachments"), never refused: only the last component of a path
 * ('/' or '\\'); control characters (NUL, CR, LF, TAB, DEL, C1 as bytes)
 * and malformed UTF-8 become '_', and so do '"' and the second dot of
 * "..";  leading dots and spaces and trailing dots and spaces go; at most
 * FILENAME_MAX_BYTES bytes, cut at a character boundary and keeping an
 * extension of up to 16 bytes; nothing left is "attachment".  len: the raw
 * bytes (NULs included).  Arena memory. */
char *filename_clean(struct arena *a, const char *raw, size_t len)
{
	const char *base = raw;
	char *out, *o, *s, *end, *dot;
	size_t n;

	for (size_t i = 0; i < len; i++)
		if (raw[i] == '/' || raw[i] == '\\')
			base = raw + i + 1;
	len -= (size_t)(base - raw);
	out = o = arena_alloc(a, len * 3 + sizeof("attachment"));
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)base[i];
		size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		if (c < 0x20 || c == 0x7f || c == '"') {
			*o++ = '_';
			i++;
		} else if (c < 0x80) {
			char ch = (char)(c == '.' && o > out && o[-1] == '.' ? '_' : c);
			*o++ = ch;
			i++;
		} else if (i + k <= len && utf8_valid(base + i, k) &&
		           !(k == 2 && c == 0xc2 && (unsigned char)base[i + 1] < 0xa0)) {
			memcpy(o, base + i, k);   /* C1 controls (U+0080..U+009F) excepted */
			o += k;
			i += k;
		} else {
			*o++ = '_';
			i++;
		}
	}
	*o = '\0';
	for (s = out; *s == '.' || *s == ' '; s++)
		;
	for (end = s + strlen(s); end > s && (end[-1] == '.' || end[-1] == ' '); end--)
		;
	*end = '\0';
	n = (size_t)(end - s);
	if (n > FILENAME_MAX_BYTES) {
		dot = strrchr(s, '.');
		size_t ext = dot && end - dot <= 16 ? (size_t)(end - dot) : 0;
		size_t keep = FILENAME_MAX_BYTES - ext;
		while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
			keep--;
		memmove(s + keep, end - ext, ext + 1);
		for (char *p = s + 1; *p; p++)   /* the cut may have joined two dots */
			if (*p == '.' && p[-1] == '.')
				*p = '_';
	}
	return *s ? s : arena_strdup(a, "attachment");
}

/* ---- time cells ---------------------------------------------------------- */

/* The civil date of day z since 1970-01-01 (proleptic Gregorian; eras of
 * 400 years, March-based years so that the leap day ends a year). */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);                        /* 0..146096 */
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* 0..365 */
	unsigned mp = (5 * doy + 2) / 153;                                   /* 0..11, March = 0 */
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (long long)yoe + era * 400 + (*m <= 2);
}

static char *put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

/* put_num: v (>= 0, < 10^19) in decimal, then the NUL-terminated suffix. */
static char *put_num(char *p, long long v, const char *suffix)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	while (*suffix)
		*p++ = *suffix++;
	*p = '\0';
	return p;
}

/* -30610224000 is 1000-01-01T00:00:00Z, 253402300799 9999-12-31T23:59:59Z */
#define TIME_CELLS_MIN (-30610224000LL)
#define TIME_CELLS_MAX 253402300799LL

int time_cells(long long t, long long now, struct time_cells *out)
{
	if (t < TIME_CELLS_MIN || t > TIME_CELLS_MAX)
		return -1;
	long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	unsigned sec = (unsigned)(t - days * 86400), mo, dd;
	long long y;
	civil_from_days(days, &y, &mo, &dd);
	/* "YYYY-MM-DD" once: the start of iso (and of text), and ago after 30 days */
	char date[11];
	put2(put2(date, (unsigned)(y / 100)), (unsigned)(y % 100));
	date[4] = '-';
	put2(date + 5, mo);
	date[7] = '-';
	put2(date + 8, dd);
	date[10] = '\0';
	char *p = out->iso;
	memcpy(p, date, 10);
	p[10] = 'T';
	p = put2(p + 11, sec / 3600);
	*p++ = ':';
	p = put2(p, sec / 60 % 60);
	*p++ = ':';
	p = put2(p, sec % 60);
	memcpy(p, "Z", 2);
	memcpy(out->text, out->iso, 16);     /* YYYY-MM-DDTHH:MM */
	out->text[10] = ' ';
	memcpy(out->text + 16, " UTC", 5);

	long long d = now - t;
	if (d < 60)
		memcpy(out->ago, "just now", 9);
	else if (d < 3600)
		put_num(out->ago, d / 60, " min ago");
	else if (d < 86400)
		put_num(out->ago, d / 3600, " h ago");
	else if (d < 30 * 86400)
		put_num(out->ago, d / 86400, d / 86400 == 1 ? " day ago" : " days ago");
	else
		memcpy(out->ago, date, 11);
	return 0;
}
