/*
 * child.c — the signal set-up of ccrd's children (workers and the mailer).
 * A child keeps SIGTERM, SIGINT and SIGUSR1 blocked and unblocks them only
 * inside its one wait (ppoll with the empty mask child_signals returns), so
 * a signal lands between requests or mails, never inside one: the work in
 * flight always finishes.  SIGTERM/SIGINT set child_stop; SIGUSR1 asks for
 * the log file to be reopened at the next child_reopen_log.
 */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "extern.h"

volatile int child_stop;
static volatile sig_atomic_t reopen_log;

static void on_stop(int sig)
{
	(void)sig;
	child_stop = 1;
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
		child_stop = 1;
}

void child_reopen_log(const struct conf *c)
{
	if (reopen_log) {
		reopen_log = 0;
		log_reopen(c->log_file);
	}
}

void child_idle(const struct conf *c, long ms, const sigset_t *waitmask)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	ppoll(NULL, 0, &ts, waitmask);
	child_reopen_log(c);
}
