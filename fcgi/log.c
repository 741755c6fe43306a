/*
 * log.c — one line per event on stderr, for journald (README
 * "Operations").  Text or JSON lines.  Request data is escaped as in a
 * JSON string (RFC 8259), so no input can forge a line; callers never pass
 * passwords, codes, tokens or cookies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

static const char *log_prog = "ccrd";
static int log_json;
static const char *const level_name[] = { "error", "warning", "info", "debug" };

void log_init(const char *prog, int json)
{
	log_prog = prog;
	log_json = json;
}

/* log_reopen: point stderr at path again (SIGUSR1, after rotation). 0 / -1. */
int log_reopen(const char *path)
{
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_err("%s: open %s: %s", __func__, path, strerror(errno));
		return -1;
	}
	if (dup2(fd, STDERR_FILENO) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* utf8_seq: the length of the well-formed UTF-8 sequence at s (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), 0 if the
 * bytes there are not one. */
static size_t utf8_seq(const unsigned char *s)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		unsigned char lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		unsigned char lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
		    (s[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* log_escape: copy src into dst as the inside of a JSON string (RFC 8259
 * section 7), so the same text is safe in a text line and in a JSON line:
 * \" \\ \b \f \n \r \t, \u00XX for other control characters and DEL,
 * well-formed UTF-8 copied, every byte of malformed UTF-8 replaced by
 * \ufffd.  Stops before an escape that would not fit whole; always
 * NUL-terminates; returns the length written. */
size_t log_escape(char *dst, size_t dstlen, const char *src)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t o = 0;

	if (dstlen == 0)
		return 0;
	while (p && *p) {
		char esc[8];
		const char *out = esc;
		size_t n, adv = 1;

		switch (*p) {
		case '"':  out = "\\\""; break;
		case '\\': out = "\\\\"; break;
		case '\b': out = "\\b"; break;
		case '\f': out = "\\f"; break;
		case '\n': out = "\\n"; break;
		case '\r': out = "\\r"; break;
		case '\t': out = "\\t"; break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
			else if (*p < 0x80)
				esc[0] = (char)*p, esc[1] = '\0';
			else if ((adv = utf8_seq(p)) > 0)
				memcpy(esc, p, adv), esc[adv] = '\0';
			else
				adv = 1, out = "\\ufffd";
		}
		n = strlen(out);
		if (o + n >= dstlen)
			break;
		memcpy(dst + o, out, n);
		o += n;
		p += adv;
	}
	dst[o] = '\0';
	return o;
}

static void stamp(char *buf, size_t n)   /* n >= 64 */
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (ts.tv_nsec / 1000000) % 1000);
}

/* One write(2) per line so lines from several processes never interleave. */
static void emit(const char *line, size_t len)
{
	ssize_t w;

	do
		w = write(STDERR_FILENO, line, len);
	while (w == -1 && errno == EINTR);
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	char msg[1024], esc[2048], line[2400], ts[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	stamp(ts, sizeof(ts));
	log_escape(esc, sizeof(esc), msg);
	if (log_json)
		n = snprintf(line, sizeof(line),
		    "{\"time\":\"%s\",\"prog\":\"%s\",\"pid\":%d,\"level\":\"%s\",\"msg\":\"%s\"}\n",
		    ts, log_prog, (int)getpid(), level_name[lv], esc);
	else
		n = snprintf(line, sizeof(line), "%s %s[%d] %s: %s\n", ts, log_prog,
		    (int)getpid(), level_name[lv], esc);
	if (n > 0)
		emit(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* log_access: the per-request line: time, request id, method,
 * path, status, duration, user id (and the client address). */
void log_access(const char *reqid, const char *method, const char *path,
                int status, double ms, long long user_id, const char *addr)
{
	char epath[1100], emeth[40], eaddr[100], line[1600], ts[64], uid[24];
	int n;

	stamp(ts, sizeof(ts));
	log_escape(epath, sizeof(epath), path);
	log_escape(emeth, sizeof(emeth), method);
	log_escape(eaddr, sizeof(eaddr), addr);
	if (user_id > 0)
		snprintf(uid, sizeof(uid), "%lld", user_id);
	else
		snprintf(uid, sizeof(uid), "-");
	if (log_json)
		n = snprintf(line, sizeof(line),
		    "{\"time\":\"%s\",\"prog\":\"%s\",\"pid\":%d,\"req\":\"%s\",\"method\":\"%s\","
		    "\"path\":\"%s\",\"status\":%d,\"ms\":%.2f,\"user\":\"%s\",\"addr\":\"%s\"}\n",
		    ts, log_prog, (int)getpid(), reqid, emeth, epath, status, ms, uid, eaddr);
	else
		n = snprintf(line, sizeof(line), "%s %s[%d] req=%s %s \"%s\" %d %.2fms user=%s addr=%s\n",
		    ts, log_prog, (int)getpid(), reqid, emeth, epath, status, ms, uid, eaddr);
	if (n > 0)
		emit(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}
