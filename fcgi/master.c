/*
 * master.c — supervise the workers, the mailer, the webhook sender and
 * (when [mail_in] imap_url is set) the IMAP fetcher: spawn, reap, respawn with back-off,
 * reload on SIGHUP (a new generation of every child, so a fetcher starts,
 * stops or changes with imap_url), stop on SIGTERM/SIGINT, reopen logs on
 * SIGUSR1 (README "Operations").
 *
 * The master blocks every signal it cares about and takes them one at a
 * time from sigtimedwait(): a signal is handled at that one safe point,
 * never inside other work, with a timeout for delayed respawns and
 * shutdown deadlines.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

enum kind { K_WORKER, K_MAILER, K_FETCHER, K_WEBHOOKS, K_SEARCH, K__MAX };
static const char *const kind_names[K__MAX] = { "worker", "mailer", "fetcher", "webhook sender",
	"search indexer" };
#define MAX_CHILDREN 1024
#define STORM_WINDOW 60.0        /* seconds */
#define STORM_CRASHES 20         /* crashes within the window = a storm */
#define STORM_PAUSE 30.0         /* seconds without respawning */
#define MAX_BACKOFF 30.0

struct child {
	pid_t pid;              /* 0 = free slot */
	enum kind kind;
	unsigned gen;           /* config generation it was started with */
	int retiring;           /* told to stop; not respawned */
	double started;
};

struct slot {                   /* what should be running, per kind and index */
	enum kind kind;
	int fails;              /* consecutive quick crashes */
	double due;             /* respawn not before (now_s() seconds); 0 = now */
	int wanted;
};

static struct child children[MAX_CHILDREN];
static struct slot *slots;
static int nslots;
static unsigned gen;
static double crash_times[STORM_CRASHES];
static int crash_next;
static double storm_until;

/* now_s: the one clock (clock_ms), in the seconds the master counts in. */
static double now_s(void)
{
	return clock_ms() / 1e3;
}

static pid_t spawn(const struct conf *c, int lfd, enum kind k)
{
	sigset_t all, old;
	pid_t pid;
	int i;

	for (i = 0; i < MAX_CHILDREN && children[i].pid; i++)
		;
	if (i == MAX_CHILDREN)
		return -1;
	/* block everything around fork so the child starts with no handler
	 * of ours running (a signal between fork and the child's sigaction
	 * once hung a worker) */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0) {
		int rc;
		if (k == K_WORKER)
			rc = worker_main(c, lfd);
		else {
			close(lfd);
			rc = k == K_MAILER ? mailer_main(c) : k == K_WEBHOOKS ? webhook_main(c)
			    : k == K_SEARCH ? search_main(c) : fetcher_main(c);
		}
		exit(rc);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		log_err("%s: fork: %s", __func__, strerror(errno));
		return -1;
	}
	children[i].pid = pid;
	children[i].kind = k;
	children[i].gen = gen;
	children[i].retiring = 0;
	children[i].started = now_s();
	return pid;
}

static void signal_children(int sig, int only_old)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid && (!only_old || children[i].gen != gen)) {
			if (sig == SIGTERM)
				children[i].retiring = 1;
			kill(children[i].pid, sig);
		}
}

static int live_children(void)
{
	int n = 0;

	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid)
			n++;
	return n;
}

/* A crash storm: STORM_CRASHES crashes within STORM_WINDOW seconds. */
static void note_crash(double now)
{
	double oldest;

	crash_times[crash_next] = now;
	crash_next = (crash_next + 1) % STORM_CRASHES;
	oldest = crash_times[crash_next];
	if (oldest > 0 && now - oldest < STORM_WINDOW && now >= storm_until) {
		storm_until = now + STORM_PAUSE;
		log_err("CRASH STORM: %d children crashed within %.0f s; not respawning for %.0f s "
		        "— look at the errors above", STORM_CRASHES, now - oldest, STORM_PAUSE);
	}
}

/* Reap every exited child.  Returns 1 when one exited with EX_BADCONF. */
static int reap(void)
{
	int status, badconf = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_CHILDREN; i++) {
			if (children[i].pid != pid)
				continue;
			struct child ch = children[i];
			children[i].pid = 0;
			double now = now_s(), lived = now - ch.started;
			int crashed = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
			const char *what = kind_names[ch.kind];
			if (WIFEXITED(status) && WEXITSTATUS(status) == EX_BADCONF) {
				log_err("%s %d exited %d: bad configuration; not respawning", what,
				    (int)pid, EX_BADCONF);
				badconf = 1;
			} else if (WIFSIGNALED(status))
				log_err("%s %d killed by signal %d (%s) after %.1f s", what, (int)pid,
				    WTERMSIG(status), strsignal(WTERMSIG(status)), lived);
			else if (crashed)
				log_err("%s %d exited with status %d after %.1f s", what, (int)pid,
				    WEXITSTATUS(status), lived);
			if (ch.retiring || ch.gen != gen)
				break;
			/* find the slot to refill */
			for (int s = 0; s < nslots; s++) {
				if (slots[s].kind != ch.kind || slots[s].wanted)
					continue;
				slots[s].wanted = 1;
				if (crashed) {
					metrics_add(MET_WORKER_RESTARTS, 1);
					note_crash(now);
					slots[s].fails = lived < 5.0 ? slots[s].fails + 1 : 1;
					/* back-off: immediate, then 0.1 s doubling to 30 s */
					double d = slots[s].fails <= 1 ? 0.0
					    : 0.1 * (double)(1 << (slots[s].fails < 12 ? slots[s].fails - 2 : 10));
					slots[s].due = now + (d > MAX_BACKOFF ? MAX_BACKOFF : d);
				} else {
					slots[s].fails = 0;
					slots[s].due = 0;
				}
				break;
			}
			break;
		}
	}
	return badconf;
}

/* The children a configuration wants: slot 0 the mailer, slot 1 the
 * webhook sender (always: idle it costs one indexed query a second), slot
 * 2 the search indexer (always: idle, one indexed read every [search]
 * poll_interval), then the workers, then the fetcher when imap_url is set. */
static void set_slots(const struct conf *c)
{
	int fetcher = c->imap_url[0] != '\0';
	int n = conf_workers(c) + 3 + fetcher;

	free(slots);
	slots = calloc((size_t)n, sizeof(*slots));
	if (slots == NULL)
		abort();
	nslots = n;
	for (int i = 0; i < n; i++) {
		slots[i].kind = i == 0 ? K_MAILER : i == 1 ? K_WEBHOOKS : i == 2 ? K_SEARCH
		    : fetcher && i == n - 1 ? K_FETCHER
		    : K_WORKER;
		slots[i].wanted = 1;
	}
}

/* Start what is wanted and due.  Returns seconds until the next due slot
 * (or a large number when nothing waits). */
static double fill(const struct conf *c, int lfd)
{
	double now = now_s(), next = 3600;

	for (int s = 0; s < nslots; s++) {
		if (!slots[s].wanted)
			continue;
		double due = slots[s].due > storm_until ? slots[s].due : storm_until;
		if (due > now) {
			if (due - now < next)
				next = due - now;
			continue;
		}
		if (spawn(c, lfd, slots[s].kind) > 0)
			slots[s].wanted = 0;
		else if (next > 1.0)
			next = 1.0;
	}
	return next;
}

static void shutdown_all(const struct conf *c)
{
	double deadline = now_s() + c->shutdown_timeout;
	/* the mailer finishes the SMTP transaction in flight (bounded by
	 * [smtp] timeout) and records it, or the mail is sent again later */
	double mailer_deadline = now_s() + (c->smtp_timeout + 5 > c->shutdown_timeout
	    ? c->smtp_timeout + 5 : c->shutdown_timeout);
	int workers_killed = 0;
	sigset_t set;
	siginfo_t si;

	sd_notify(0, "STOPPING=1");
	log_info("stopping: waiting up to %d s for requests in flight", c->shutdown_timeout);
	signal_children(SIGTERM, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	while (live_children() > 0) {
		reap();
		if (live_children() == 0)
			break;
		double left = deadline - now_s();
		if (left <= 0 && !workers_killed && mailer_deadline - now_s() > 0) {
			int n = 0;
			/* the fetcher too: a message it had not moved yet is fetched
			 * again later and is then a duplicate, a no-op; and the
			 * webhook sender: a delivery cut short is sent again after its
			 * lease, with the same event id */
			for (int i = 0; i < MAX_CHILDREN; i++)
				if (children[i].pid && children[i].kind != K_MAILER) {
					kill(children[i].pid, SIGKILL);
					n++;
				}
			if (n)
				log_err("shutdown_timeout passed: killing %d workers (and the fetcher and "
				    "webhook sender); the "
				    "mailer has until [smtp] timeout + 5 s", n);
			workers_killed = 1;
		}
		if (workers_killed)
			left = mailer_deadline - now_s();
		if (left <= 0) {
			log_err("shutdown_timeout passed: killing %d children", live_children());
			signal_children(SIGKILL, 0);
			while (live_children() > 0 && waitpid(-1, NULL, 0) > 0)
				for (int i = 0; i < MAX_CHILDREN; i++)
					if (children[i].pid && kill(children[i].pid, 0) == -1)
						children[i].pid = 0;
			break;
		}
		struct timespec ts = { 0, (long)((left > 0.2 ? 0.2 : left) * 1e9) };
		sigtimedwait(&set, &si, &ts);
	}
}

/* master_run: the master's loop.  Returns the process exit code: 0 after
 * SIGTERM/SIGINT, EX_BADCONF when a child reported a bad configuration. */
int master_run(struct conf *c, int lfd)
{
	sigset_t set;
	siginfo_t si;
	int rc = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (metrics_init() == -1)
		log_warn("metrics: no shared memory; /metrics answers 503");
	if (rate_init() == -1)
		log_warn("api rate: no shared memory; every API request is counted in the database");
	set_slots(c);
	fill(c, lfd);
	log_info("ready: %d workers%s on %s", conf_workers(c),
	    c->imap_url[0] ? ", a mailer and an IMAP fetcher" : " and a mailer", c->listen);
	sd_notify(0, "READY=1");

	for (;;) {
		double next = fill(c, lfd);
		struct timespec ts = { (time_t)next, (long)((next - (double)(time_t)next) * 1e9) };
		int sig = sigtimedwait(&set, &si, &ts);
		if (sig == -1)
			continue;       /* timeout or EINTR: respawns are due */
		if (sig == SIGCHLD) {
			if (reap()) {
				rc = EX_BADCONF;
				break;
			}
		} else if (sig == SIGTERM || sig == SIGINT) {
			log_info("signal %d: stopping", sig);
			break;
		} else if (sig == SIGUSR1) {
			log_reopen(c->log_file);
			signal_children(SIGUSR1, 0);
		} else if (sig == SIGHUP) {
			struct conf *nc = malloc(sizeof(*nc));
			char err[512];
			if (nc == NULL)
				continue;
			sd_notify(0, "RELOADING=1");
			if (conf_load(nc, c->path, err, sizeof(err)) == -1) {
				log_err("reload refused, keeping the running configuration: %s", err);
				free(nc);
				sd_notify(0, "READY=1");
				continue;
			}
			if (strcmp(nc->listen, c->listen) != 0)
				log_warn("reload: 'listen' changed; a new socket needs a restart, keeping %s",
				    c->listen);
			snprintf(nc->listen, sizeof(nc->listen), "%s", c->listen);
			*c = *nc;       /* children already forked keep their copy */
			free(nc);
			log_init("ccrd", c->log_json);
			gen++;
			/* new generation first, then retire the old one: the socket
			 * stays open in the master, so no connection is refused */
			set_slots(c);
			fill(c, lfd);
			signal_children(SIGTERM, 1);
			metrics_add(MET_RELOADS, 1);
			log_info("reloaded %s: generation %u, %d workers%s", c->path, gen, conf_workers(c),
			    c->imap_url[0] ? " and an IMAP fetcher" : "");
			sd_notify(0, "READY=1");
		}
	}
	shutdown_all(c);
	log_info("stopped");
	return rc;
}
