/*
 * fcgi.c — a look at the FastCGI records of a new connection before
 * libfcgi reads them, to drop what libfcgi mishandles (README "Known
 * limit" under "Tests"; the FastCGI 1.0 specification for the records).
 */
#include <fastcgi.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "extern.h"

/* fcgi_suspect: look at the first records of a new connection without
 * consuming them (MSG_PEEK) and refuse what libfcgi mishandles (found by
 * the fuzz and attack suites): management records (request id 0: each one
 * leaks memory inside libfcgi), roles other than responder, record types
 * a web server never sends first, and name/value lengths over 64 KiB (two
 * lengths near 2^31 overflow libfcgi's sum and abort the worker).  nginx
 * never sends any of these.  Returns 1 to drop the connection, 0 to serve
 * it (also when the records are not all there yet: libfcgi copes). */
int fcgi_suspect(int fd)
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
