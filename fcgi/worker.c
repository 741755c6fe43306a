/*
 * worker.c — a worker's life: init after fork, accept, one request at a
 * time, per-request reset, recycle after max_requests.
 *
 * Signals (child.c; README "Design notes"): the worker keeps
 * SIGTERM/SIGINT/SIGUSR1 blocked and only unblocks them inside ppoll() on
 * the listening socket.  So a signal can only land while the worker is
 * idle, never inside a request:
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

/* Wait for a connection; the accepted descriptor, or -1 when told to stop. */
static int next_connection(int lfd, const sigset_t *waitmask, const struct conf *c)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	/* idle a second: add the API counters that wait to the database */
	const struct timespec idle = { 1, 0 };

	while (!child_stop) {
		int n = ppoll(&p, 1, &idle, waitmask);
		child_reopen_log(c);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_err("%s: ppoll: %s", __func__, strerror(errno));
			return -1;
		}
		if (n == 0) {
			token_rate_idle();
			continue;
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

	while (!child_stop && (c->max_requests == 0 || served < c->max_requests)) {
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
