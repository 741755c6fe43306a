/*
 * multipart.c — multipart/form-data bodies (RFC 7578) of the upload routes,
 * parsed by GMime 3: the body, prefixed with its Content-Type header line
 * and a blank line, is one MIME part whose children are the form's fields.
 *
 * Rules (README "Attachments"):
 * - The Content-Type is multipart/form-data with exactly one boundary of
 *   1..70 characters; the body has at least one part, at most MP_MAX_PARTS,
 *   each part's header at most MP_MAX_HEADER bytes, and a closing boundary.
 *   Checked on the raw bytes before GMime builds anything, so a body of a
 *   million tiny parts or one endless header costs no memory.
 * - Every part is a leaf with Content-Disposition form-data and a name.
 * - A part named as the form's FK_FILE field with a filename parameter is a
 *   file (an empty filename with no bytes is the browser's empty input and
 *   is skipped); its bytes stay in the body buffer, read later through a
 *   GMime stream (transfer encoding undone), never copied whole.
 * - A part without a filename named as one of the form's other fields, or
 *   csrf_token, is a text field: UTF-8 without NUL, all of them together at
 *   most max_text bytes (else 413).  The same rules as urlencoded follow
 *   (request.c's text_clean, then form_read).
 * - Any other part is ignored.  Everything else wrong answers 422 with a
 *   message that says what, never 500.
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "extern.h"

#define MP_MAX_PARTS 64          /* parts in one body */
#define MP_MAX_HEADER 8192       /* bytes of one part's header block */
#define MP_MAX_PAIRS 64          /* text fields, as for urlencoded forms */

/* One parse: the buffer stream, the part tree and the file streams. */
struct mp {
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeObject *root;
	GMimeStream *files[ATTACH_MAX_FILES];
	size_t nfiles;
};

static void multipart_init(void)
{
	static int done;

	if (!done) {
		g_mime_init();           /* counted by GMime: inmail.c may call it too */
		done = 1;
	}
}

void multipart_free(void *handle)
{
	struct mp *m = handle;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		g_object_unref(m->files[i]);
	if (m->root)
		g_object_unref(m->root);
	if (m->parser)
		g_object_unref(m->parser);
	if (m->stream)
		g_object_unref(m->stream);
	g_free(m);
}

/* multipart_stream_read: up to n bytes of a file stream (less only at its
 * end).  Bytes read, 0 at the end, -1 on error. */
long multipart_stream_read(void *stream, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = g_mime_stream_read(stream, (char *)buf + got, n - got);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (long)got;
}

int multipart_stream_rewind(void *stream)
{
	return g_mime_stream_reset(stream) == 0 ? 0 : -1;
}

/* the boundary of a multipart/form-data Content-Type: exactly one, 1..70
 * characters.  Arena copy, or NULL with *why. */
static const char *multipart_boundary(struct arena *a, const char *ctype, const char **why)
{
	GMimeContentType *ct;
	const char *b = NULL;
	int n = 0;

	*why = "The form is not multipart/form-data";
	if (ctype == NULL || !header_safe(ctype) || strlen(ctype) > 1000)
		return NULL;
	ct = g_mime_content_type_parse(NULL, ctype);
	if (ct == NULL)
		return NULL;
	if (g_mime_content_type_is_type(ct, "multipart", "form-data")) {
		GMimeParamList *l = g_mime_content_type_get_parameters(ct);
		int np = l ? g_mime_param_list_length(l) : 0;
		for (int i = 0; i < np; i++) {
			GMimeParam *p = g_mime_param_list_get_parameter_at(l, i);
			if (p && g_ascii_strcasecmp(g_mime_param_get_name(p), "boundary") == 0) {
				n++;
				b = g_mime_param_get_value(p);
			}
		}
		*why = n > 1 ? "The form has more than one boundary" : "The form has no boundary";
		if (n == 1 && b && b[0] && strlen(b) <= 70)
			b = arena_strdup(a, b);
		else
			b = NULL;
	}
	g_object_unref(ct);
	return b;
}

/* multipart_scan: the bounds on the raw body (see the rules at the top): 0, or
 * 422 with *why. */
static int multipart_scan(const char *body, size_t len, const char *boundary, const char **why)
{
	char delim[80];
	size_t dl = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	size_t off = 0, parts = 0;

	for (;;) {
		const char *p = memmem(body + off, len - off, delim, dl);
		if (p == NULL)
			break;
		size_t at = (size_t)(p - body);
		off = at + dl;
		if (at > 0 && body[at - 1] != '\n')
			continue;            /* not at a line start: content */
		if (len - off >= 2 && body[off] == '-' && body[off + 1] == '-') {
			if (parts == 0) {
				*why = "The form has no fields";
				return 422;
			}
			return 0;
		}
		if (++parts > MP_MAX_PARTS) {
			*why = "The form has too many parts";
			return 422;
		}
		/* the header block ends at the first empty line after the delimiter line */
		const char *eol = memchr(body + off, '\n', len - off);
		if (eol == NULL)
			break;
		size_t h = (size_t)(eol + 1 - body), lim = len - h < MP_MAX_HEADER ? len - h : MP_MAX_HEADER;
		const char *s = body + h, *e = NULL;
		if (lim >= 1 && s[0] == '\n')
			e = s;
		else if (lim >= 2 && s[0] == '\r' && s[1] == '\n')
			e = s;
		if (e == NULL) {
			const char *x = memmem(s, lim, "\n\r\n", 3), *y = memmem(s, lim, "\n\n", 2);
			e = x && (!y || x < y) ? x : y;
		}
		if (e == NULL) {
			*why = len - h <= MP_MAX_HEADER ? "The form is cut short"
			                                : "A part of the form has too long a header";
			return 422;
		}
		off = (size_t)(e - body);
	}
	*why = parts ? "The form is cut short" : "The form has no fields";
	return 422;
}

/* the decoded content of a part, as a stream the caller unrefs */
static GMimeStream *multipart_content(GMimePart *p)
{
	GMimeDataWrapper *w = g_mime_part_get_content(p);
	GMimeStream *raw = w ? g_mime_data_wrapper_get_stream(w) : NULL;
	GMimeStream *fs;

	if (raw == NULL)
		return g_mime_stream_mem_new();
	g_mime_stream_reset(raw);
	fs = g_mime_stream_filter_new(raw);
	switch (g_mime_data_wrapper_get_encoding(w)) {
	case GMIME_CONTENT_ENCODING_BASE64:
	case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
	case GMIME_CONTENT_ENCODING_UUENCODE: {
		GMimeFilter *f = g_mime_filter_basic_new(g_mime_data_wrapper_get_encoding(w), FALSE);
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
		break;
	}
	default:
		break;
	}
	return fs;
}

/* the field of fm called name, or NULL */
static const struct form_field *multipart_field(const struct form *fm, const char *name)
{
	for (int i = 0; fm && i < fm->n; i++)
		if (strcmp(fm->f[i].name, name) == 0)
			return &fm->f[i];
	return NULL;
}

/* One parse of m->stream (the header prefix, then the body). */
static int multipart_parse_tree(struct arena *a, struct mp *m, const struct form *fm,
                                size_t max_text, struct kvlist *form, struct attach_file *files,
                                size_t *nfiles, size_t *sent, const char **why)
{
	size_t cap = 0, text = 0;
	char *buf;

	form->v = NULL;
	form->n = 0;
	*nfiles = *sent = 0;
	m->parser = g_mime_parser_new_with_stream(m->stream);
	g_mime_parser_set_persist_stream(m->parser, TRUE);
	m->root = g_mime_parser_construct_part(m->parser, NULL);
	*why = "The form cannot be read";
	if (m->root == NULL || !GMIME_IS_MULTIPART(m->root))
		return 422;
	GMimeMultipart *mp = GMIME_MULTIPART(m->root);
	int n = g_mime_multipart_get_count(mp);
	if (n <= 0) {
		*why = "The form has no fields";
		return 422;
	}
	buf = arena_alloc(a, max_text + 1);
	for (int i = 0; i < n; i++) {
		GMimeObject *o = g_mime_multipart_get_part(mp, i);
		if (!GMIME_IS_PART(o)) {
			*why = "A part of the form is itself multipart";
			return 422;
		}
		GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);
		if (d == NULL) {
			*why = "A part of the form has no Content-Disposition";
			return 422;
		}
		const char *disp = g_mime_content_disposition_get_disposition(d);
		if (disp == NULL || g_ascii_strcasecmp(disp, "form-data") != 0) {
			*why = "A part of the form is not form-data";
			return 422;
		}
		const char *name = g_mime_content_disposition_get_parameter(d, "name");
		if (name == NULL || name[0] == '\0') {
			*why = "A part of the form has no name";
			return 422;
		}
		const char *filename = g_mime_content_disposition_get_parameter(d, "filename");
		const struct form_field *f = multipart_field(fm, name);
		if (f && f->kind == FK_FILE) {
			if (filename == NULL)
				continue;
			GMimeStream *s = multipart_content(GMIME_PART(o));
			char probe;
			if (filename[0] == '\0' && multipart_stream_read(s, &probe, 1) == 0) {
				g_object_unref(s);      /* the browser's empty file input */
				continue;
			}
			multipart_stream_rewind(s);
			(*sent)++;
			if (*nfiles >= ATTACH_MAX_FILES || m->nfiles >= ATTACH_MAX_FILES) {
				g_object_unref(s);
				continue;
			}
			m->files[m->nfiles++] = s;
			files[*nfiles] = (struct attach_file){
				.name = filename_clean(a, filename, strlen(filename)), .stream = s,
			};
			(*nfiles)++;
			continue;
		}
		if (filename != NULL || (f == NULL && strcmp(name, "csrf_token") != 0))
			continue;            /* not a field of this form */
		GMimeStream *s = multipart_content(GMIME_PART(o));
		long got = multipart_stream_read(s, buf, max_text - text + 1);
		g_object_unref(s);
		if (got < 0)
			return 422;
		if ((size_t)got > max_text - text) {
			*why = "The request is too large";
			return 413;
		}
		text += (size_t)got;
		if (memchr(buf, '\0', (size_t)got) || !utf8_valid(buf, (size_t)got)) {
			*why = "Invalid characters";
			return 422;
		}
		int rc = kv_add(a, form, &cap, MP_MAX_PAIRS, arena_strdup(a, name),
		    arena_strndup(a, buf, (size_t)got));
		if (rc != PARSE_OK) {
			*why = "The form has too many fields";
			return 422;
		}
	}
	return 0;
}

/* multipart_run: bounds, then the parse, over array b (prefix + body). */
static int multipart_run(struct arena *a, GByteArray *b, size_t plen, const char *boundary,
                         const struct form *fm, size_t max_text, struct kvlist *form,
                         struct attach_file *files, size_t *nfiles, size_t *sent, void **handle,
                         const char **why)
{
	struct mp *m = g_new0(struct mp, 1);
	int rc = multipart_scan((const char *)b->data + plen, b->len - plen, boundary, why);

	m->stream = g_mime_stream_mem_new_with_byte_array(b);   /* owns b */
	*handle = m;
	if (rc != 0)
		return rc;
	return multipart_parse_tree(a, m, fm, max_text, form, files, nfiles, sent, why);
}

/* the header line GMime reads the body's type from, and its boundary */
static char *multipart_prefix(struct arena *a, const char *ctype, const char **boundary,
                              const char **why)
{
	multipart_init();
	*boundary = multipart_boundary(a, ctype, why);
	return *boundary ? arena_printf(a, "Content-Type: %s\r\n\r\n", ctype) : NULL;
}

int multipart_parse(struct arena *a, const char *ctype, const char *body, size_t len,
                    const struct form *fm, size_t max_text, struct kvlist *form,
                    struct attach_file *files, size_t *nfiles, size_t *sent, void **handle,
                    const char **why)
{
	const char *boundary;
	char *pre = multipart_prefix(a, ctype, &boundary, why);

	*handle = NULL;
	*nfiles = *sent = 0;
	form->v = NULL;
	form->n = 0;
	if (pre == NULL)
		return 422;
	size_t plen = strlen(pre);
	GByteArray *b = g_byte_array_sized_new((guint)(plen + len));
	g_byte_array_append(b, (const guint8 *)pre, (guint)plen);
	g_byte_array_append(b, (const guint8 *)body, (guint)len);
	return multipart_run(a, b, plen, boundary, fm, max_text, form, files, nfiles, sent, handle, why);
}

/* multipart_read: the body of r (len bytes, Content-Type ctype), read
 * straight into the buffer GMime parses, then parsed into r->form and
 * r->files.  0, or the HTTP status with r->message. */
int multipart_read(struct request *r, size_t len, const char *ctype)
{
	const char *boundary, *why = NULL;
	char *pre = multipart_prefix(r->a, ctype, &boundary, &why);
	FCGX_Request *f = r->fcgx;

	r->files = arena_alloc(r->a, ATTACH_MAX_FILES * sizeof(*r->files));
	if (pre == NULL) {
		r->message = why;
		return 422;
	}
	size_t plen = strlen(pre);
	GByteArray *b = g_byte_array_sized_new((guint)(plen + len));
	g_byte_array_append(b, (const guint8 *)pre, (guint)plen);
	g_byte_array_set_size(b, (guint)(plen + len));
	int got = FCGX_GetStr((char *)b->data + plen, (int)len, f->in);
	if (got != (int)len) {
		g_byte_array_unref(b);
		r->message = "Incomplete request body";
		return 400;
	}
	int rc = multipart_run(r->a, b, plen, boundary, r->route ? r->route->form : NULL,
	    (size_t)r->conf->max_body, &r->form, r->files, &r->nfiles, &r->files_sent, &r->upload,
	    &why);
	r->message = why;
	return rc;
}
