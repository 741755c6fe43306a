/*
 * attach.c — attachments (README "Attachments"): files on a ticket's
 * description, on one of its messages or on one of its internal notes,
 * from the page (multipart.c) or from mail (mailin.c, messages only).
 *
 * Rules:
 * - At most ATTACH_MAX_FILES on one ticket, message or note, each at most
 *   [attachments] max_file_bytes, together at most ATTACH_MAX_REQUEST_BYTES.
 * - The type is libmagic's reading of the bytes, never the sender's claim.
 * - Stored in the caller's transaction: a metadata row and the bytes in
 *   pieces of at most ATTACH_CHUNK (a 0-byte file has one empty piece).
 *   Nothing is kept when the transaction rolls back.
 * - GET /attachments/{id}/{name}: whoever may see the ticket, and for a
 *   note's file whoever may see the note (agents and admins: never the
 *   customer); else 404, as for a missing one.  The stored bytes with nosniff, the sandbox CSP,
 *   Cache-Control private and the SHA-256 as ETag; PNG, JPEG, GIF and WebP
 *   inline, everything else as a download (RFC 6266 / 5987 file names),
 *   typed application/octet-stream unless it is PDF or plain text.  One
 *   byte range (206) is served; a file is streamed piece by piece, never
 *   held whole.
 */
#include <magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extern.h"

#define ATTACH_CHUNK (1024 * 1024)   /* bytes of one stored piece */
#define ATTACH_MAGIC_BYTES (256 * 1024) /* what libmagic looks at */

/* served inline: images a browser shows as images and never runs */
static const char *const inline_types[] = { "image/png", "image/jpeg", "image/gif", "image/webp" };
/* downloads typed as detected; everything else is application/octet-stream */
static const char *const safe_types[] = { "application/pdf", "text/plain" };

static int attach_in(const char *const *list, size_t n, const char *t)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], t) == 0)
			return 1;
	return 0;
}
#define IN(list, t) attach_in(list, sizeof(list) / sizeof(list[0]), t)

/* the piece buffer of a process: files move through it, one piece at a time */
static unsigned char *attach_buffer(void)
{
	static unsigned char *buf;

	if (buf == NULL && (buf = malloc(ATTACH_CHUNK)) == NULL)
		abort();
	return buf;
}

/* libmagic's type of b[0..n), "application/octet-stream" when it cannot say */
static void attach_detect(const unsigned char *b, size_t n, char *out, size_t outlen)
{
	static magic_t m;
	static int failed;
	const char *t = NULL;

	if (m == NULL && !failed) {
		m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
		if (m == NULL || magic_load(m, NULL) != 0) {
			log_err("attach: libmagic unusable: %s", m ? magic_error(m) : "magic_open");
			if (m)
				magic_close(m);
			m = NULL;
			failed = 1;
		}
	}
	if (m)
		t = magic_buffer(m, b, n < ATTACH_MAGIC_BYTES ? n : ATTACH_MAGIC_BYTES);
	if (t == NULL || !header_safe(t) || strlen(t) >= outlen || strchr(t, '/') == NULL)
		t = "application/octet-stream";
	snprintf(out, outlen, "%s", t);
}

static long attach_read(struct attach_file *f, void *buf, size_t n)
{
	if (f->stream)
		return multipart_stream_read(f->stream, buf, n);
	size_t k = f->len - f->off < n ? f->len - f->off : n;
	memcpy(buf, f->data + f->off, k);
	f->off += k;
	return (long)k;
}

static int attach_rewind(struct attach_file *f)
{
	f->off = 0;
	return f->stream ? multipart_stream_rewind(f->stream) : 0;
}

/* attach_measure: size, SHA-256 and type of f, read once and rewound.  0 / -1. */
static int attach_measure(struct attach_file *f)
{
	unsigned char *buf = attach_buffer();
	void *h = crypto_sha256_begin();
	long n;

	if (h == NULL || attach_rewind(f) == -1) {
		if (h)
			crypto_sha256_end(h, f->sha256);
		return -1;
	}
	f->size = 0;
	while ((n = attach_read(f, buf, ATTACH_CHUNK)) > 0) {
		if (f->size == 0)
			attach_detect(buf, (size_t)n, f->ctype, sizeof(f->ctype));
		f->size += n;
		crypto_sha256_add(h, buf, (size_t)n);
	}
	if (f->size == 0)
		attach_detect((const unsigned char *)"", 0, f->ctype, sizeof(f->ctype));
	if (crypto_sha256_end(h, f->sha256) == -1 || n < 0)
		return -1;
	return attach_rewind(f);
}

int attach_check(const struct conf *c, struct attach_file *files, size_t n, const char **why)
{
	long long total = 0;

	for (size_t i = 0; i < n; i++) {
		if (attach_measure(&files[i]) == -1) {
			*why = "The attachments cannot be read";
			return 500;
		}
		if (!attach_fits(c, &files[i], total)) {
			*why = "Attachments are too large";
			return 413;
		}
		total += files[i].size;
	}
	return 0;
}

int attach_fits(const struct conf *c, const struct attach_file *f, long long used)
{
	return f->size <= c->attach_max_file_bytes && used + f->size <= ATTACH_MAX_REQUEST_BYTES;
}

/* attach_measure for mail (mailin.c decides with attach_fits) */
int attach_measure_all(struct attach_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (attach_measure(&files[i]) == -1)
			return -1;
	return 0;
}

static const char Q_INSERT[] =
    "INSERT INTO attachments (ticket_id, message_id, note_id, filename, content_type, size, "
    "sha256, uploader_id, created_at) VALUES (?, NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?, ?, NOW())";
static const char Q_PIECE[] =
    "INSERT INTO attachment_chunks (attachment_id, seq, data) VALUES (?, ?, ?)";

int attach_store(struct arena *a, long long ticket_id, struct attach_owner o, long long uploader,
                 struct attach_file *files, size_t n)
{
	unsigned char *buf = attach_buffer();

	(void)a;
	for (size_t i = 0; i < n; i++) {
		struct attach_file *f = &files[i];
		if (db_exec(Q_INSERT, DB_ARGS(P_INT(ticket_id), P_INT(o.message_id), P_INT(o.note_id),
		        P_STR(f->name), P_STR(f->ctype), P_INT(f->size), P_STR(f->sha256),
		        P_INT(uploader))) < 0)
			return -1;
		long long id = db_insert_id(), seq = 0, got = 0;
		long k;
		if (attach_rewind(f) == -1)
			return -1;
		do {
			k = attach_read(f, buf, ATTACH_CHUNK);
			if (k < 0 || (k == 0 && seq > 0))
				break;
			if (db_exec(Q_PIECE, DB_ARGS(P_INT(id), P_INT(seq), P_BLOB(buf, (size_t)k))) < 0)
				return -1;
			got += k;
			seq++;
		} while (k == ATTACH_CHUNK);
		if (k < 0 || got != f->size) {
			log_err("attach: %s read %lld bytes, measured %lld", f->name, got, f->size);
			return -1;
		}
	}
	return 0;
}

/* "12 bytes", "3.4 KiB", "1.2 MiB" */
static const char *attach_size(struct arena *a, long long n)
{
	if (n < 1024)
		return arena_printf(a, "%lld byte%s", n, n == 1 ? "" : "s");
	if (n < 1024 * 1024)
		return arena_printf(a, "%.1f KiB", (double)n / 1024);
	return arena_printf(a, "%.1f MiB", (double)n / (1024 * 1024));
}

const char *attach_url(struct arena *a, const char *base, long long id, const char *name)
{
	return arena_printf(a, "%s/attachments/%lld/%s", base, id, url_encode(a, name));
}

/* The files a page or poll shows (attach_thread_load).  A customer's
 * query never asks for a note's files; attach_fill checks each row again. */
#define AQ_COLS \
	"SELECT id, IFNULL(message_id, 0), IFNULL(note_id, 0), filename, content_type, size " \
	"FROM attachments "
static const char Q_THREAD_STAFF[] = AQ_COLS
    "WHERE ticket_id = ? AND ((message_id IS NULL AND note_id IS NULL AND ? = 1) "
    "OR message_id >= NULLIF(?, 0) OR note_id >= NULLIF(?, 0)) ORDER BY id LIMIT 5000";
static const char Q_THREAD_CUSTOMER[] = AQ_COLS
    "WHERE ticket_id = ? AND note_id IS NULL AND ((message_id IS NULL AND ? = 1) "
    "OR message_id >= NULLIF(?, 0)) ORDER BY id LIMIT 5000";

int attach_thread_load(struct request *r, long long ticket_id, int description,
                       long long message_from, long long note_from, struct db_rows *out)
{
	if (r->user->role == ROLE_CUSTOMER)
		return db_query(r->a, out, Q_THREAD_CUSTOMER, AT__N, DB_ARGS(P_INT(ticket_id),
		    P_INT(description != 0), P_INT(message_from))) < 0 ? -1 : 0;
	return db_query(r->a, out, Q_THREAD_STAFF, AT__N, DB_ARGS(P_INT(ticket_id),
	    P_INT(description != 0), P_INT(message_from), P_INT(note_from))) < 0 ? -1 : 0;
}

void attach_fill(struct request *r, struct vdict *d, const struct db_rows *at, struct attach_owner o)
{
	struct vdict *list = NULL;
	int staff = r->user->role != ROLE_CUSTOMER;

	for (size_t i = 0; at && i < at->nrows; i++) {
		if (db_int(at, i, AT_MESSAGE) != o.message_id || db_int(at, i, AT_NOTE) != o.note_id)
			continue;
		if (o.note_id && !staff)
			continue;           /* a note's file: as the note, never the customer's */
		if (list == NULL)
			list = vdict_section(d, "ATTACHMENTS");
		struct vdict *row = vdict_section(list, "ATTACHMENT");
		const char *url = attach_url(r->a, "", db_int(at, i, AT_ID), DB_CELL(at, i, AT_NAME));
		vdict_set(row, "URL", url);
		vdict_set(row, "NAME", DB_CELL(at, i, AT_NAME));
		vdict_set(row, "SIZE", attach_size(r->a, db_int(at, i, AT_SIZE)));
		if (IN(inline_types, DB_CELL(at, i, AT_TYPE))) {
			/* the preview links to the file too: named by its alt-less image's file */
			struct vdict *pv = vdict_section(row, "PREVIEW");
			vdict_set(pv, "URL", url);
			vdict_set(pv, "NAME", DB_CELL(at, i, AT_NAME));
		}
	}
}

static const char Q_OF_OWNER[] = AQ_COLS
    "WHERE ticket_id = ? AND IFNULL(message_id, 0) = ? AND IFNULL(note_id, 0) = ? ORDER BY id";

/* attach_mail_fill: an ATTACHMENT section per file of owner o in a
 * notification: name, size, link from base_url.  Note mail goes to staff
 * only (note.c).  0 / -1. */
int attach_mail_fill(const struct ctx *x, struct vdict *d, long long ticket_id,
                     struct attach_owner o)
{
	struct db_rows at;

	if (db_query(x->a, &at, Q_OF_OWNER, AT__N, DB_ARGS(P_INT(ticket_id),
	        P_INT(o.message_id), P_INT(o.note_id))) < 0)
		return -1;
	for (size_t i = 0; i < at.nrows; i++) {
		struct vdict *row = vdict_section(d, "ATTACHMENT");
		vdict_set(row, "NAME", DB_CELL(&at, i, AT_NAME));
		vdict_set(row, "SIZE", attach_size(x->a, db_int(&at, i, AT_SIZE)));
		vdict_set(row, "URL", attach_url(x->a, x->conf->base_url, db_int(&at, i, AT_ID),
		    DB_CELL(&at, i, AT_NAME)));
	}
	return 0;
}

/* ---- GET /attachments/{id}/{name} ----------------------------------------- */

/* RFC 6266: attachment; filename="ASCII fallback"; filename*=UTF-8''pct */
static const char *attach_disposition(struct arena *a, const char *kind, const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(name);
	char *ascii = arena_alloc(a, n + 1), *pct = arena_alloc(a, n * 3 + 1), *o = pct;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		ascii[i] = (char)(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '_' : c);
		/* RFC 5987 attr-char */
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("!#$&+-.^_`|~", c))
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return arena_printf(a, "%s; filename=\"%s\"; filename*=UTF-8''%s", kind, ascii, pct);
}

/* If-None-Match names etag (or is "*") */
static int attach_etag_match(const char *inm, const char *etag)
{
	size_t el = strlen(etag);

	if (inm == NULL)
		return 0;
	for (const char *p = inm; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == el && memcmp(p, etag, el) == 0)
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

/* Range: bytes=a-b | a- | -n, one range of size bytes, into [*lo, *hi].
 * 1 a range, 0 none or not understood (the whole file), -1 unsatisfiable. */
static int attach_range(const char *h, long long size, long long *lo, long long *hi)
{
	long long a = -1, b = -1;
	char *end;

	if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	h += 6;
	if (*h == '-') {
		b = strtoll(h + 1, &end, 10);
		if (end == h + 1 || *end || b < 0)
			return 0;
		if (b == 0)
			return -1;
		*lo = size > b ? size - b : 0;
		*hi = size - 1;
		return size > 0 ? 1 : -1;
	}
	if (*h < '0' || *h > '9')
		return 0;
	a = strtoll(h, &end, 10);
	if (*end != '-')
		return 0;
	h = end + 1;
	if (*h) {
		if (*h < '0' || *h > '9')
			return 0;
		b = strtoll(h, &end, 10);
		if (*end || b < a)
			return 0;
	}
	if (a >= size)
		return -1;
	*lo = a;
	*hi = b < 0 || b >= size ? size - 1 : b;
	return 1;
}

/* a download in progress: the bytes [lo, hi] of the pieces from seq on */
struct attach_out {
	struct request *r;
	long long lo, hi, seq, sent;
	int stop, gone;
};

/* db_stream's callback: the part of piece `seq` inside [lo, hi] out */
static int attach_piece(void *arg, long long seq, const void *data, size_t n)
{
	struct attach_out *o = arg;
	long long start = seq * ATTACH_CHUNK, len = (long long)n;

	if (seq != o->seq || (len != ATTACH_CHUNK && start + len <= o->hi))
		return o->stop = 1;     /* a piece missing or short: the size is not what is stored */
	long long from = o->lo > start ? o->lo - start : 0;
	long long to = o->hi < start + len - 1 ? o->hi - start + 1 : len;
	o->seq++;
	if (to > from) {
		if (resp_stream_write(o->r, (const char *)data + from, (size_t)(to - from)) == -1)
			return o->stop = o->gone = 1;   /* the client went away */
		o->sent += to - from;
	}
	if (o->seq * ATTACH_CHUNK > o->hi)
		o->stop = 1;
	return o->stop;
}

static const char Q_ONE[] =
    "SELECT ticket_id, filename, content_type, size, sha256, note_id IS NOT NULL "
    "FROM attachments WHERE id = ?";
enum { A1_TICKET, A1_NAME, A1_TYPE, A1_SIZE, A1_SHA, A1_NOTE, A1__N };
static const char Q_PIECES[] =
    "SELECT seq, data FROM attachment_chunks WHERE attachment_id = ? AND seq >= ? "
    "ORDER BY seq LIMIT 2";

int attach_get(struct request *r)
{
	struct db_rows rows;
	struct ticket t;
	int n;

	if (r->user == NULL)
		return 404;     /* like a file that is not there: no login redirect names it */
	n = db_query(r->a, &rows, Q_ONE, A1__N, DB_ARGS(P_INT(r->path_id)));

	if (n <= 0)
		return n < 0 ? db_status() : 404;
	n = ticket_read(r->a, db_int(&rows, 0, A1_TICKET), &t);
	if (n <= 0)
		return n < 0 ? db_status() : 404;
	if (!ticket_visible(r, &t))
		return 404;
	/* a note's file: whoever may see the note (agents and admins) */
	if (db_int(&rows, 0, A1_NOTE) && r->user->role == ROLE_CUSTOMER)
		return 404;
	const char *name = DB_CELL(&rows, 0, A1_NAME), *type = DB_CELL(&rows, 0, A1_TYPE);
	long long size = db_int(&rows, 0, A1_SIZE), lo = 0, hi = size - 1;
	const char *etag = arena_printf(r->a, "\"%s\"", DB_CELL(&rows, 0, A1_SHA));
	int inl = IN(inline_types, type);

	r->csp = "default-src 'none'; sandbox";
	r->cache = "private";
	resp_header_add(r, "ETag", etag);
	resp_header_add(r, "Cross-Origin-Resource-Policy", "same-origin");
	if (attach_etag_match(req_param(r, "HTTP_IF_NONE_MATCH"), etag)) {
		resp_stream_start(r, 304, NULL, -1);
		return 304;
	}
	resp_header_add(r, "Accept-Ranges", "bytes");
	resp_header_add(r, "Content-Disposition", attach_disposition(r->a,
	    inl ? "inline" : "attachment", name));
	const char *ctype = inl || IN(safe_types, type) ? type : "application/octet-stream";
	const char *ifr = req_param(r, "HTTP_IF_RANGE");
	/* If-Range with another validator: the whole file */
	int ranged = ifr && strcmp(ifr, etag) != 0
	    ? 0 : attach_range(req_param(r, "HTTP_RANGE"), size, &lo, &hi);
	if (ranged < 0) {
		resp_header_add(r, "Content-Range", arena_printf(r->a, "bytes */%lld", size));
		resp_stream_start(r, 416, NULL, 0);
		return 416;
	}
	if (ranged)
		resp_header_add(r, "Content-Range", arena_printf(r->a, "bytes %lld-%lld/%lld", lo, hi, size));
	resp_stream_start(r, ranged ? 206 : 200, ctype, size ? hi - lo + 1 : 0);
	if (strcmp(r->method, "HEAD") == 0 || size == 0)
		return r->status;

	/* the pieces overlapping [lo, hi], a few at a time, each read straight
	 * into the one piece buffer and written out before the next */
	struct attach_out o = { .r = r, .lo = lo, .hi = hi, .seq = lo / ATTACH_CHUNK };
	while (!o.stop && o.seq * ATTACH_CHUNK <= hi) {
		long long first = o.seq;
		n = db_stream(Q_PIECES, DB_ARGS(P_INT(r->path_id), P_INT(o.seq)), attach_buffer(),
		    ATTACH_CHUNK, attach_piece, &o);
		if (n <= 0 || o.seq == first)
			break;
	}
	if (o.sent != hi - lo + 1 && !o.gone)
		log_err("attach: req=%s attachment %lld: %lld of %lld bytes sent (%s)", r->id,
		    r->path_id, o.sent, hi - lo + 1, n < 0 ? db_last_msg() : "pieces missing");
	return r->status;
}
