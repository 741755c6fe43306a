/*
 * worker.c — a worker's life: init after fork, accept, one request at a
 * time, per-request reset, recycle after max_requests.
 *
 * Signals (DESIGN §3.6): the worker keeps SIGTERM/SIGINT/SIGUSR1 blocked
 * and only unblocks them inside ppoll() on the listening socket.  So a
 * signal can only land while the worker is idle, never inside a request:
 * the request in flight always finishes, and libfcgi never sees EINTR or
 * its shutdown flag (which would make its reads fail mid-request).  The
 * worker accepts the connection itself and hands the descriptor to
 * FCGX_Accept_r through FCGX_Request.ipcFd, which libfcgi uses instead of
 * accepting when it is already set (fcgiapp.c); the request's listen_sock
 * is -1 so libfcgi can never block in accept() on its own.
 */
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "extern.h"

volatile int g_stop;
static volatile sig_atomic_t reopen_log;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	reopen_log = 1;
}

/* The signal set workers and the mailer keep blocked outside their waits. */
void child_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);   /* reload is the master's business */
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_SETMASK, &block, NULL);
	sigemptyset(waitmask);          /* unblocked only while waiting */
	/* die with the master (PR_SET_PDEATHSIG): no orphan keeps the socket */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		g_stop = 1;
}

void child_reopen_log(const struct conf *c)
{
	if (reopen_log) {
		reopen_log = 0;
		log_reopen(c->log_file);
	}
}

/* fcgi_suspect: look at the first records of a new connection without
 * consuming them (MSG_PEEK) and refuse what libfcgi mishandles (found by
 * the fuzz and attack suites): management records (request id 0: each one
 * leaks memory inside libfcgi), roles other than responder, record types
 * a web server never sends first, and name/value lengths over 64 KiB (two
 * lengths near 2^31 overflow libfcgi's sum and abort the worker).  nginx
 * never sends any of these.  Returns 1 to drop the connection, 0 to serve
 * it (also when the records are not all there yet: libfcgi copes). */
static int fcgi_suspect(int fd)
{
	unsigned char buf[16384], params[16384];
	size_t np = 0, off = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, 1000) != 1)
		return 0;
	n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return 0;
	while (off + 8 <= (size_t)n) {
		const unsigned char *h = buf + off;
		unsigned type = h[1], id = (unsigned)h[2] << 8 | h[3];
		size_t clen = (size_t)h[4] << 8 | h[5], plen = h[6];
		if (h[0] != FCGI_VERSION_1 || id == 0)
			return 1;
		if (off == 0 && type != FCGI_BEGIN_REQUEST)
			return 1;
		if (type != FCGI_BEGIN_REQUEST && type != FCGI_PARAMS && type != FCGI_STDIN &&
		    type != FCGI_ABORT_REQUEST)
			return 1;
		if (off + 8 + clen > (size_t)n)
			break;
		if (type == FCGI_BEGIN_REQUEST) {
			if (clen < 8 || ((unsigned)h[8] << 8 | h[9]) != FCGI_RESPONDER)
				return 1;
		} else if (type == FCGI_PARAMS && clen) {
			size_t take = clen < sizeof(params) - np ? clen : sizeof(params) - np;
			memcpy(params + np, h + 8, take);
			np += take;
		} else if (type == FCGI_PARAMS || type == FCGI_STDIN)
			break;              /* parameters complete */
		off += 8 + clen + plen;
	}
	/* the name/value lengths seen so far (FastCGI §3.4: 1 or 4 bytes each) */
	for (size_t i = 0; i < np;) {
		size_t len[2];
		for (int k = 0; k < 2; k++) {
			if (i >= np)
				return 0;
			if (params[i] >> 7) {
				if (i + 4 > np)
					return 0;
				len[k] = ((size_t)(params[i] & 0x7f) << 24) | ((size_t)params[i + 1] << 16) |
				    ((size_t)params[i + 2] << 8) | params[i + 3];
				i += 4;
			} else
				len[k] = params[i++];
			if (len[k] > 65536)
				return 1;
		}
		i += len[0] + len[1];
	}
	return 0;
}

/* Wait for a connection; the accepted descriptor, or -1 when told to stop. */
static int next_connection(int lfd, const sigset_t *waitmask, const struct conf *c)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	while (!g_stop) {
		int n = ppoll(&p, 1, NULL, waitmask);
		child_reopen_log(c);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_err("%s: ppoll: %s", __func__, strerror(errno));
			return -1;
		}
		/* the listening socket is non-blocking: another worker may win */
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			/* a peer that stops talking (a local client straight on the
			 * socket; nginx never does) costs 30 s, not a worker forever */
			struct timeval tv = { 30, 0 };
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			return fd;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED && errno != EPROTO) {
			log_err("%s: accept: %s", __func__, strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				usleep(100 * 1000);
		}
	}
	return -1;
}

/* worker_main: serve until told to stop or recycled.  Returns the exit code
 * (0 normal, EX_BADCONF when the views cannot be used). */
int worker_main(const struct conf *c, int lfd)
{
	FCGX_Request req;
	sigset_t waitmask;
	struct arena *a;
	long served = 0;

	if (FCGX_Init() != 0) {
		log_err("%s: FCGX_Init failed", __func__);
		return 1;
	}
	child_signals(&waitmask);     /* after FCGX_Init, which installs its own */
	prctl(PR_SET_NAME, "ccrd-worker");
	if (view_root(c->views_dir) == -1) {
		log_err("%s: views_dir %s unusable", __func__, c->views_dir);
		return EX_BADCONF;
	}
	db_init(c);
	db_connect();                 /* early, but a database that is down is not fatal */
	a = arena_new(64 * 1024);
	if (FCGX_InitRequest(&req, -1, 0) != 0)
		return 1;

	while (!g_stop && (c->max_requests == 0 || served < c->max_requests)) {
		int fd = next_connection(lfd, &waitmask, c);
		if (fd < 0)
			break;
		if (fcgi_suspect(fd)) {
			log_warn("dropped a malformed FastCGI connection");
			close(fd);
			continue;
		}
		req.ipcFd = fd;
		req.keepConnection = 1;   /* so FCGX_Accept_r's own Finish keeps fd */
		if (FCGX_Accept_r(&req) < 0) {
			/* a broken FastCGI conversation: libfcgi closed fd; next */
			req.ipcFd = -1;
			continue;
		}
		if (FCGX_GetError(req.in) != 0) {
			/* libfcgi ends the parameters at a stream error as if they
			 * were complete: never serve a truncated request */
			req.keepConnection = 0;
			FCGX_Finish_r(&req);
			if (req.ipcFd >= 0)
				close(req.ipcFd);
			req.ipcFd = -1;
			continue;
		}
		struct request r;
		request_init(&r, a, &req, c);
		if (req.role == FCGI_RESPONDER)
			route_dispatch(&r);
		else
			request_refuse(&r, 400, "Only the FastCGI responder role is served");
		req.keepConnection = 0;   /* we never keep upstream connections */
		FCGX_Finish_r(&req);
		if (req.ipcFd >= 0) {
			close(req.ipcFd);
			req.ipcFd = -1;
		}
		arena_reset(a);
		served++;
	}
	db_close();
	arena_free(a);
	FCGX_Free(&req, 1);
	return 0;
}
