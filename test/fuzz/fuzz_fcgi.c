/*
 * fuzz_fcgi.c — a FastCGI request through libfcgi into request_init and
 * request_read, the way worker.c serves one (route_dispatch is left out: it
 * needs the database).
 *
 * Input, text mode (the usual case):
 *     NAME=VALUE\n ...      the FastCGI parameters, one a line
 *     \n                    an empty line ends them
 *     body                  the rest: the STDIN stream
 * CONTENT_LENGTH is added (the body's length) when the lines do not set it
 * and the body is not empty.  The harness wraps this in well-formed
 * BEGIN_REQUEST, PARAMS and STDIN records (STDIN in 1000-byte records).
 * Raw mode, only with FUZZ_FCGI_RAW=1 in the environment: an input that
 * starts with byte 0x01 (FCGI_VERSION_1) is written as it is, so malformed
 * record streams reach libfcgi.  It is off by default because it soon
 * finds bugs of libfcgi itself (Debian 12's 2.4.2-2+deb12u1), which are
 * not ccrd's and which only a peer of the FastCGI socket can reach; their
 * reproducers are kept in corpus/fcgi/ (as text inputs they are harmless):
 *  - libfcgi-params-length-overflow: ReadParams adds two 31-bit lengths
 *    (+2) in an int; near 2^31 the sum wraps, malloc fails and libfcgi's
 *    Malloc assert()s: SIGABRT, the worker dies (here a GET_VALUES record).
 *  - libfcgi-management-leak: a management record (requestId 0) of any type
 *    but GET_VALUES leaks ProcessManagementRecord's NewParams(3), 48 bytes
 *    a record.
 *  - libfcgi-begin-padding-as-record: the padding of a BEGIN_REQUEST record
 *    is read as the next record header (here a leaking management record).
 *
 * The stream goes into one end of a socketpair, the writer end is shut
 * down (so a short stream reads as EOF, never blocks), and the other end
 * becomes req.ipcFd.  After each input that descriptor must be closed
 * (by libfcgi or by us, as worker.c does) and the lowest free descriptor
 * must be the one of the first input: no descriptor leaks.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "extern.h"
#include "fuzz_util.h"

#define MAX_FUZZ_INPUT (64 * 1024)

static struct arena *A;
static struct conf C;
static FCGX_Request req;
static int fd_baseline = -1;
static int raw;                 /* FUZZ_FCGI_RAW=1 */

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (n == 0)
		return;
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void record(struct buf *b, int type, const void *content, size_t n)
{
	unsigned char h[8] = { 1, (unsigned char)type, 0, 1,
		(unsigned char)(n >> 8), (unsigned char)n, 0, 0 };
	put(b, h, sizeof(h));
	put(b, content, n);
}

static void nvlen(struct buf *b, size_t n)
{
	if (n < 128) {
		unsigned char c = (unsigned char)n;
		put(b, &c, 1);
	} else {
		unsigned char c[4] = { (unsigned char)(n >> 24 | 0x80), (unsigned char)(n >> 16),
			(unsigned char)(n >> 8), (unsigned char)n };
		put(b, c, 4);
	}
}

static void param(struct buf *pv, const char *name, size_t nl, const char *val, size_t vl)
{
	nvlen(pv, nl);
	nvlen(pv, vl);
	put(pv, name, nl);
	put(pv, val, vl);
}

/* Text mode input → a FastCGI byte stream in out. */
static void encode(const uint8_t *data, size_t size, struct buf *out)
{
	struct buf pv = { 0 };
	const char *s = (const char *)data, *end = s + size, *body = end;
	int have_cl = 0;
	static const unsigned char begin[8] = { 0, 1 /* RESPONDER */, 0 /* flags */ };

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		if (le == s) {          /* empty line: the body follows */
			body = s + 1;
			break;
		}
		const char *eq = memchr(s, '=', (size_t)(le - s));
		const char *ne = eq ? eq : le, *vs = eq ? eq + 1 : le;
		if (ne - s == 14 && memcmp(s, "CONTENT_LENGTH", 14) == 0)
			have_cl = 1;
		param(&pv, s, (size_t)(ne - s), vs, (size_t)(le - vs));
		s = nl ? nl + 1 : end;
	}
	if (body > end)
		body = end;
	size_t blen = (size_t)(end - body);
	if (!have_cl && blen > 0) {
		char cl[32];
		int n = snprintf(cl, sizeof(cl), "%zu", blen);
		param(&pv, "CONTENT_LENGTH", 14, cl, (size_t)n);
	}

	record(out, 1 /* BEGIN_REQUEST */, begin, sizeof(begin));
	for (size_t off = 0; off < pv.n; off += 65535)
		record(out, 4 /* PARAMS */, pv.p + off, pv.n - off > 65535 ? 65535 : pv.n - off);
	record(out, 4, NULL, 0);
	for (size_t off = 0; off < blen; off += 1000)
		record(out, 5 /* STDIN */, body + off, blen - off > 1000 ? 1000 : blen - off);
	record(out, 5, NULL, 0);
	free(pv.p);
}

static int all_upper(const char *m)
{
	size_t n = 0;

	for (; m[n]; n++)
		if (m[n] < 'A' || m[n] > 'Z')
			return 0;
	return n > 0 && n <= 16;
}

static void check_list(const struct kvlist *l, int cleaned)
{
	CHECK(l->n <= 64);
	for (size_t i = 0; i < l->n; i++) {
		const char *k = l->v[i].key, *v = l->v[i].val;
		CHECK(k != NULL && v != NULL);
		if (!cleaned)
			continue;
		CHECK(utf8_valid(k, strlen(k)) && utf8_valid(v, strlen(v)));
		for (const char *p = v; *p; p++)
			CHECK((unsigned char)*p >= 0x20 ? (unsigned char)*p != 0x7f
			                                : (*p == '\n' || *p == '\t'));
	}
}

static void check_request(struct request *r, int st)
{
	CHECK(st == 0 || st == 400 || st == 413 || st == 415 || st == 422);
	CHECK(st == 0 || r->message != NULL);
	CHECK(nul_within(r->id, sizeof(r->id)));
	size_t idl = strlen(r->id);
	CHECK(idl >= 8 && idl <= 32 && strspn(r->id, "0123456789abcdef") == idl);
	CHECK(strlen(r->remote_addr) < 64 && header_safe(r->remote_addr));
	CHECK(r->method != NULL && r->path != NULL);
	check_list(&r->cookies, 0);
	if (st != 0)
		return;
	CHECK(all_upper(r->method));
	CHECK(r->path[0] == '/' && strlen(r->path) <= 2048);
	const char *duri = req_param(r, "DOCUMENT_URI");
	if (duri)
		CHECK(strcmp(r->path, duri) == 0);
	check_list(&r->query, 1);
	check_list(&r->form, 1);
	if (strcmp(r->method, "POST") != 0)
		CHECK(r->form.n == 0);
}

/* Answer as route_dispatch would for a small text page, through resp_send. */
static void answer(struct request *r, int st)
{
	const char *v;

	r->status = st ? st : 200;
	if (st == 0) {
		resp_text(r, 200, r->path);
		if ((v = req_query(r, "next")) != NULL)
			r->location = v;    /* resp_send must drop an unsafe one */
		if ((v = cookie_get(r, "x")) != NULL && header_safe(v))
			CHECK(resp_header_add(r, "X-Fuzz", v) == 0);
	}
	resp_send(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	const char *e = getenv("FUZZ_FCGI_RAW");
	raw = e && strcmp(e, "1") == 0;
	if (FCGX_Init() != 0)
		abort();
	if (FCGX_InitRequest(&req, -1, 0) != 0)
		abort();
	conf_defaults(&C);
	A = arena_new(64 * 1024);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf stream = { 0 };
	int sv[2];

	if (size > MAX_FUZZ_INPUT)
		return 0;
	if (raw && size > 0 && data[0] == 1)
		put(&stream, data, size);
	else
		encode(data, size, &stream);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	/* never block: a stream the socket cannot hold is skipped */
	size_t off = 0;
	while (off < stream.n) {
		ssize_t w = send(sv[1], stream.p + off, stream.n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(stream.p);
	if (off < stream.n) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);

	/* worker.c's sequence */
	req.ipcFd = sv[0];
	req.keepConnection = 1;
	if (FCGX_Accept_r(&req) < 0) {
		req.ipcFd = -1;         /* a broken conversation: libfcgi closed it */
	} else {
		struct request r;
		request_init(&r, A, &req, &C);
		int st = request_read(&r);
		check_request(&r, st);
		answer(&r, st);
		req.keepConnection = 0;
		FCGX_Finish_r(&req);
		if (req.ipcFd >= 0) {
			close(req.ipcFd);
			req.ipcFd = -1;
		}
	}
	arena_reset(A);
	/* sv[0] must be closed now, whichever path ran */
	errno = 0;
	CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
	close(sv[1]);

	int probe = dup(2);
	CHECK(probe >= 0);
	if (fd_baseline < 0)
		fd_baseline = probe;
	CHECK(probe == fd_baseline);
	close(probe);
	return 0;
}
