/*
 * request.c — struct request: the FastCGI parameters, query, cookies and
 * bounded form body in; the status line, headers and body out.
 */
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "extern.h"

#define MAX_QUERY_PAIRS 64
#define MAX_FORM_PAIRS 64
#define MAX_COOKIES 64

void request_init(struct request *r, struct arena *a, void *fcgx, const struct conf *c)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->fcgx = fcgx;
	r->conf = c;
	r->t0 = clock_ms();
	r->method = "GET";
	r->path = "/";
	r->remote_addr = "";
	r->ctype = "text/html; charset=utf-8";
}

const char *req_param(const struct request *r, const char *name)
{
	FCGX_Request *f = r->fcgx;

	return f ? FCGX_GetParam(name, f->envp) : NULL;
}

const char *req_query(const struct request *r, const char *name)
{
	return kv_get(&r->query, name);
}

const char *req_form(const struct request *r, const char *name)
{
	return kv_get(&r->form, name);
}

/* request_make_id: nginx's $request_id (8..32 hex digits) when it sent one,
 * else 16 random hex digits. */
static void request_make_id(struct request *r)
{
	const char *rid = req_param(r, "REQUEST_ID");

	if (str_is_hex(rid, 8, 32)) {
		snprintf(r->id, sizeof(r->id), "%s", rid);
		return;
	}
	if (crypto_random_hex(r->id, 8) == -1)
		snprintf(r->id, sizeof(r->id), "%s", "0000000000000000");
}

static int method_ok(const char *m)
{
	size_t n = 0;

	for (; m[n]; n++)
		if (m[n] < 'A' || m[n] > 'Z')
			return 0;
	return n > 0 && n <= 16;
}

/* Every form and query value goes through text_clean: control characters
 * other than LF and TAB answer 422 "Invalid characters". */
static int clean_values(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (text_clean((char *)(uintptr_t)l->v[i].val) == -1)
			return -1;
	return 0;
}

/* request_read_head: fill r from the FastCGI parameters and the query.
 * Returns 0, or the HTTP status of the refusal (r->message says why):
 * 400 malformed, 422 bad text. */
int request_read_head(struct request *r)
{
	const char *m = req_param(r, "REQUEST_METHOD");
	const char *uri = req_param(r, "DOCUMENT_URI");
	const char *qs = req_param(r, "QUERY_STRING");
	const char *ck = req_param(r, "HTTP_COOKIE");
	const char *addr = req_param(r, "REMOTE_ADDR");
	int rc;

	request_make_id(r);
	if (addr && strlen(addr) < 64 && header_safe(addr))
		r->remote_addr = addr;
	if (m && method_ok(m))
		r->method = m;
	else if (m) {
		r->message = "Bad request method";
		return 400;
	}
	if (uri == NULL) {
		/* no DOCUMENT_URI: take REQUEST_URI up to the query */
		const char *ru = req_param(r, "REQUEST_URI");
		if (ru) {
			const char *q = strchr(ru, '?');
			uri = q ? arena_strndup(r->a, ru, (size_t)(q - ru)) : ru;
		}
	}
	if (uri && uri[0] == '/' && strlen(uri) <= 2048)
		r->path = uri;
	else if (uri) {
		r->message = "Bad request path";
		return 400;
	}
	/* the JSON API: cookies ignored, JSON bodies and errors */
	r->api = strncmp(r->path, "/api/", 5) == 0 || strcmp(r->path, "/api") == 0;
	if (ck && strlen(ck) <= 8192 && cookie_parse(r->a, ck, &r->cookies, MAX_COOKIES) != PARSE_OK)
		r->cookies.n = 0;     /* a silly Cookie header is ignored, not fatal */
	if (qs && *qs) {
		rc = form_parse(r->a, qs, strlen(qs), &r->query, MAX_QUERY_PAIRS);
		if (rc == PARSE_UTF8) {
			r->message = "Invalid characters";
			return 422;
		}
		if (rc != PARSE_OK) {
			r->message = "Malformed query string";
			return 400;
		}
		if (clean_values(&r->query) == -1) {
			r->message = "Invalid characters";
			return 422;
		}
	}
	return 0;
}

/* ctype is the media type `type` (parameters may follow) */
static int ctype_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	return ct && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* read_json: an /api/ POST body of len bytes: at most JSON_MAX_BODY
 * (413 unread), application/json (415), decoded by json_decode into
 * r->form (its fields, then the forms' control-character rule).  An empty
 * body is no fields.  0, or the HTTP status with r->message. */
static int read_json(struct request *r, long long len, const char *ct)
{
	const char *field = NULL;

	if (len > JSON_MAX_BODY) {
		r->message = "The request body is larger than 64 KiB";
		return 413;
	}
	if (len == 0)
		return 0;
	if (!ctype_is(ct, "application/json")) {
		r->message = "Send the request body as application/json";
		return 415;
	}
	char *body = arena_alloc(r->a, (size_t)len + 1);
	FCGX_Request *f = r->fcgx;
	if (FCGX_GetStr(body, (int)len, f->in) != (int)len) {
		r->message = "Incomplete request body";
		return 400;
	}
	body[len] = '\0';
	int rc = json_decode(r->a, body, (size_t)len, json_api_fields, json_api_nfields, &r->form,
	    &r->message, &field);
	if (rc == 0 && clean_values(&r->form) == -1) {
		r->message = "Invalid characters";
		return 422;
	}
	r->api_field = rc ? field : NULL;
	return rc;
}

/* request_read_body: a POST body by the rules of r->route (NULL: none
 * matched, the default rules).  application/x-www-form-urlencoded on every
 * route, at most [server] max_body; multipart/form-data only on RF_UPLOAD
 * routes, at most ATTACH_MAX_REQUEST_BYTES + ATTACH_BODY_SLACK.  A body
 * over its limit answers 413 without being read.  Returns 0, or the HTTP
 * status of the refusal (r->message says why): 400 malformed, 413 too
 * large, 415 body type, 422 bad text or a malformed multipart body. */
int request_read_body(struct request *r)
{
	int rc;

	if (strcmp(r->method, "POST") != 0)
		return 0;

	const char *cl = req_param(r, "CONTENT_LENGTH");
	const char *ct = req_param(r, "CONTENT_TYPE");
	int upload = r->route && (r->route->flags & RF_UPLOAD) && ctype_is(ct, "multipart/form-data");
	long long len = 0;
	if (cl && *cl) {
		char *end;
		errno = 0;
		len = strtoll(cl, &end, 10);
		if (errno || *end || len < 0) {
			r->message = "Bad Content-Length";
			return 400;
		}
	}
	if (upload && len > ATTACH_MAX_REQUEST_BYTES + ATTACH_BODY_SLACK) {
		r->message = "Attachments are too large";
		return 413;
	}
	if (!upload && len > r->conf->max_body) {
		/* a body over [server] max_body: 413 without reading it */
		r->message = "The request is too large";
		return 413;
	}
	if (r->api)
		return read_json(r, len, ct);
	if (len == 0)
		return 0;
	if (upload) {
		rc = multipart_read(r, (size_t)len, ct);
		if (rc == 0 && clean_values(&r->form) == -1) {
			r->message = "Invalid characters";
			return 422;
		}
		return rc;
	}
	if (!ctype_is(ct, "application/x-www-form-urlencoded")) {
		r->message = r->route && (r->route->flags & RF_UPLOAD)
		    ? "Forms must be sent as application/x-www-form-urlencoded or multipart/form-data"
		    : "Forms must be sent as application/x-www-form-urlencoded";
		return 415;
	}
	char *body = arena_alloc(r->a, (size_t)len + 1);
	FCGX_Request *f = r->fcgx;
	int got = FCGX_GetStr(body, (int)len, f->in);
	if (got != (int)len) {
		r->message = "Incomplete request body";
		return 400;
	}
	rc = form_parse(r->a, body, (size_t)len, &r->form, MAX_FORM_PAIRS);
	if (rc == PARSE_UTF8) {
		r->message = "Invalid characters";
		return 422;
	}
	if (rc != PARSE_OK) {
		r->message = "Malformed form";
		return 400;
	}
	if (clean_values(&r->form) == -1) {
		r->message = "Invalid characters";
		return 422;
	}
	return 0;
}

/* request_read: head and body, by the default rules (no route). */
int request_read(struct request *r)
{
	int rc = request_read_head(r);

	return rc ? rc : request_read_body(r);
}

/* request_refuse: answer status without routing (a FastCGI role other
 * than responder), with the usual headers and log line. */
void request_refuse(struct request *r, int status, const char *why)
{
	r->message = why;
	request_make_id(r);
	page_error(r, status);
	resp_send(r);
	log_access(r->id, r->method, r->path, status, clock_ms() - r->t0, 0, r->remote_addr);
}

/* request_ctx: what audit, mail and codes need of this request — its arena,
 * configuration, id, client address and the user acting now (0 before a
 * login) — refreshed from r at each call. */
const struct ctx *request_ctx(struct request *r)
{
	r->ctx = (struct ctx){ .a = r->a, .conf = r->conf, .reqid = r->id, .addr = r->remote_addr,
	                       .actor = r->user ? r->user->id : 0 };
	return &r->ctx;
}

/* resp_header_add: 0, or -1 when the value could split the header (CR/LF)
 * or the table is full — then the header is not sent. */
int resp_header_add(struct request *r, const char *name, const char *value)
{
	if (r->nhdr >= RESP_MAX_HEADERS || !header_safe(name) || !header_safe(value)) {
		log_err("%s: req=%s refused header %s", __func__, r->id, name);
		return -1;
	}
	r->hdr[r->nhdr].name = name;
	r->hdr[r->nhdr].value = value;
	r->nhdr++;
	return 0;
}

/* resp_redirect: a 303 See Other to a same-site location; returns 303. */
int resp_redirect(struct request *r, const char *location)
{
	r->location = location;
	return 303;
}

/* resp_text: a small plain-text body (healthz); returns status. */
int resp_text(struct request *r, int status, const char *text)
{
	r->ctype = "text/plain; charset=utf-8";
	r->body = arena_strdup(r->a, text);
	r->body_len = strlen(text);
	return status;
}

const char *resp_reason(int s)
{
	switch (s) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/* The status line and headers of an answer, gathered before they are
 * written: into buf (a body's headers travel in the body's one writev,
 * stream_write), or, when buf is NULL or full, into libfcgi's stream. */
#define RESP_HEAD_CAP 8192
struct resp_head_buf {
	char *buf;          /* RESP_HEAD_CAP bytes, or NULL */
	size_t len;
	FCGX_Stream *out;
};

static void head_put(struct resp_head_buf *h, const char *s, size_t n)
{
	if (h->buf && h->len + n <= RESP_HEAD_CAP) {
		memcpy(h->buf + h->len, s, n);
		h->len += n;
		return;
	}
	if (h->buf) {       /* full: what is gathered goes first, then the rest */
		FCGX_PutStr(h->buf, (int)h->len, h->out);
		h->buf = NULL;
		h->len = 0;
	}
	FCGX_PutStr(s, (int)n, h->out);
}

/* resp_head: the status line and headers (the security headers of README
 * "Accounts and security" on every response; r->csp and r->cache replace
 * the site's policy and no-store).  Header lines are formatted here with
 * snprintf: libfcgi's own FCGX_FPrintF knows no %zu.  A line longer than
 * its buffer is left out. */
static void resp_head(struct request *r, struct resp_head_buf *h)
{
	char line[2200];
	int n;

	n = snprintf(line, sizeof(line), "Status: %d %s\r\n"
	    "Content-Security-Policy: %s\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: same-origin\r\n"
	    "Cache-Control: %s\r\n", r->status, resp_reason(r->status),
	    r->csp ? r->csp : "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
	    r->cache ? r->cache : "no-store");
	if (n > 0 && (size_t)n < sizeof(line))
		head_put(h, line, (size_t)n);
	if (r->location && header_safe(r->location) && strlen(r->location) < 2048) {
		n = snprintf(line, sizeof(line), "Location: %s\r\n", r->location);
		head_put(h, line, (size_t)n);
	}
	for (size_t i = 0; i < r->nhdr; i++) {
		n = snprintf(line, sizeof(line), "%s: %s\r\n", r->hdr[i].name, r->hdr[i].value);
		if (n > 0 && (size_t)n < sizeof(line))
			head_put(h, line, (size_t)n);
	}
}

/* sndbuf_fit: a socket send buffer that takes a body of len bytes whole
 * (the kernel caps it at net.core.wmem_max).  Then its one writev never
 * sleeps, and a SIGKILL (a host dying) cannot land inside it: the answer is
 * in nginx's socket whole or not at all.  A page that had to wait for nginx
 * to read (450 KB past the default 208 KiB) was cut by a kill mid-write,
 * and nginx 1.22 takes a FastCGI connection's close as the end of the
 * answer: the client kept waiting for the rest of its Content-Length. */
#define SNDBUF_AT 65536                 /* smaller bodies fit the default */
static void sndbuf_fit(int fd, size_t len)
{
	if (fd < 0 || len < SNDBUF_AT || len > (size_t)INT_MAX / 4)
		return;
	/* skb overhead on a unix socket: a quarter more is ample */
	int want = (int)(len + len / 4 + SNDBUF_AT);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}

static int stream_write(struct request *r, const char *head, size_t head_len,
                        const void *data, size_t n);

/* resp_send: write status, headers and body (nothing when the handler
 * streamed its response already).  A body and its headers go in one
 * writev (stream_write): one system call, and nginx reads the answer at
 * once; without a body the headers go through libfcgi's stream. */
void resp_send(struct request *r)
{
	FCGX_Request *f = r->fcgx;
	FCGX_Stream *out = f->out;
	char head[RESP_HEAD_CAP], line[512];
	int n;

	if (r->streamed)
		return;
	int body = r->body && strcmp(r->method, "HEAD") != 0 && r->body_len > 0;
	struct resp_head_buf h = { .buf = body ? head : NULL, .out = out };
	resp_head(r, &h);
	if (r->body) {
		n = snprintf(line, sizeof(line), "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		    r->ctype, r->body_len);
		head_put(&h, line, (size_t)n);
		if (body) {
			sndbuf_fit(f->ipcFd, h.len + r->body_len);
			if (stream_write(r, h.buf ? h.buf : "", h.len, r->body, r->body_len) == -1)
				log_warn("req=%s: the answer could not be written: %s", r->id,
				    strerror(errno));
		}
	} else {
		head_put(&h, "Content-Length: 0\r\n\r\n", 21);
	}
}

void resp_stream_start(struct request *r, int status, const char *ctype, long long len)
{
	FCGX_Request *f = r->fcgx;
	char line[512];
	int n;
	struct resp_head_buf h = { .buf = NULL, .out = f->out };

	r->status = status;
	r->streamed = 1;
	resp_head(r, &h);
	n = snprintf(line, sizeof(line), "%s%s%s", ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "");
	if (len >= 0)   /* a 304 says nothing of the length */
		n += snprintf(line + n, sizeof(line) - (size_t)n, "Content-Length: %lld\r\n", len);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
	if (n > 0 && (size_t)n < sizeof(line))
		FCGX_PutStr(line, n, f->out);
}

/* A body goes to the socket in FastCGI stdout records of RESP_RECORD bytes,
 * RESP_RECORDS of them in one writev, straight from the caller's buffer:
 * libfcgi's stream would copy it into 8 KiB records and write each one on
 * its own (a 1 MiB piece: 128 writes and a copy, here one write).  What
 * libfcgi holds (the headers) is flushed first, so the order on the wire
 * is kept; FCGX_Finish_r ends the stream as usual (FastCGI 1.0, 3.3 and 5.3:
 * a record's content is at most 65535 bytes, padding is optional). */
#define RESP_RECORD 65528
_Static_assert(RESP_HEAD_CAP <= RESP_RECORD, "the gathered headers are one record");
#define RESP_RECORDS 32

static int resp_writev(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* stream_write: head_len bytes of head (headers not yet in libfcgi's
 * stream; may be 0) then the n bytes of data, as stdout records, after
 * what libfcgi holds. */
static int stream_write(struct request *r, const char *head, size_t head_len,
                        const void *data, size_t n)
{
	FCGX_Request *f = r->fcgx;
	FCGI_Header hdr[RESP_RECORDS + 1];
	struct iovec iov[2 * (RESP_RECORDS + 1)];
	const char *p = data;
	int k = 0;

	if (strcmp(r->method, "HEAD") == 0 || (n == 0 && head_len == 0))
		return 0;
	if (FCGX_FFlush(f->out) != 0 || FCGX_GetError(f->out) != 0 || f->ipcFd < 0)
		return -1;
	if (head_len > 0) {     /* RESP_HEAD_CAP < RESP_RECORD: one record */
		hdr[0] = (FCGI_Header){ .version = FCGI_VERSION_1, .type = FCGI_STDOUT,
		    .requestIdB1 = (unsigned char)(f->requestId >> 8),
		    .requestIdB0 = (unsigned char)f->requestId,
		    .contentLengthB1 = (unsigned char)(head_len >> 8),
		    .contentLengthB0 = (unsigned char)head_len };
		iov[0] = (struct iovec){ &hdr[0], sizeof(hdr[0]) };
		iov[1] = (struct iovec){ (void *)(uintptr_t)head, head_len };   /* writev only reads */
		k = 1;
	}
	do {
		for (; k < RESP_RECORDS + 1 && n > 0; k++) {
			size_t len = n < RESP_RECORD ? n : RESP_RECORD;
			hdr[k] = (FCGI_Header){ .version = FCGI_VERSION_1, .type = FCGI_STDOUT,
			    .requestIdB1 = (unsigned char)(f->requestId >> 8),
			    .requestIdB0 = (unsigned char)f->requestId,
			    .contentLengthB1 = (unsigned char)(len >> 8),
			    .contentLengthB0 = (unsigned char)len };
			iov[2 * k] = (struct iovec){ &hdr[k], sizeof(hdr[k]) };
			iov[2 * k + 1] = (struct iovec){ (void *)(uintptr_t)p, len };
			p += len;
			n -= len;
		}
		if (k > 0 && resp_writev(f->ipcFd, iov, 2 * k) == -1)
			return -1;
		k = 0;
	} while (n > 0);
	return 0;
}

int resp_stream_write(struct request *r, const void *data, size_t n)
{
	return stream_write(r, NULL, 0, data, n);
}
