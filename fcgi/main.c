/*
 * main.c — ccrd's entry: options, configuration, the listening socket,
 * privilege drop, then the master (master.c).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extern.h"

static void usage(void)
{
	fprintf(stderr, "usage: ccrd [-c config]   (default /etc/ccr/ccr.conf)\n");
}

/* listen_open: bind the FastCGI socket (unix path or host:port), set its
 * mode, make it non-blocking for the workers' accept loop.  fd or -1. */
static int listen_open(const struct conf *c)
{
	int fd, fl;

	/* FCGX_OpenSocket unlinks a stale unix socket and takes "host:port" too */
	fd = FCGX_OpenSocket(c->listen, 1024);
	if (fd < 0) {
		log_err("%s: cannot listen on %s: %s", __func__, c->listen, strerror(errno));
		return -1;
	}
	if (c->listen[0] == '/' && chmod(c->listen, c->socket_mode) == -1) {
		log_err("%s: chmod %s: %s", __func__, c->listen, strerror(errno));
		close(fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Drop root to [server] user after binding: no request is ever served as
 * root. 0 / -1. */
static int drop_privileges(const struct conf *c)
{
	struct passwd *pw;

	if (c->user[0] == '\0' || geteuid() != 0)
		return 0;
	pw = getpwnam(c->user);
	if (pw == NULL) {
		log_err("%s: no such user %s", __func__, c->user);
		return -1;
	}
	if (c->listen[0] == '/' && chown(c->listen, pw->pw_uid, (gid_t)-1) == -1)
		log_warn("%s: chown %s: %s", __func__, c->listen, strerror(errno));
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_err("%s: cannot become %s: %s", __func__, c->user, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = "/etc/ccr/ccr.conf";
	static struct conf conf;
	char err[512];
	int ch, fd;

	while ((ch = getopt(argc, argv, "c:hV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'V':
			printf("ccrd %s\n", CCR_VERSION);
			return 0;
		default:
			usage();
			return ch == 'h' ? 0 : 2;
		}
	}
	log_init("ccrd", 0);
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		log_err("%s", err);
		return EX_BADCONF;
	}
	log_init("ccrd", conf.log_json);
	if (log_reopen(conf.log_file) == -1)
		return EX_BADCONF;
	umask(027);
	fd = listen_open(&conf);
	if (fd < 0)
		return 1;
	if (drop_privileges(&conf) == -1)
		return EX_BADCONF;
	return master_run(&conf, fd);
}
