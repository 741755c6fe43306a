/*
 * user.c — rows of the users table that more than one part needs: a new
 * account (registration, POST /admin/agents, ccr-admin), whether an email
 * is taken, and the address mail about an account goes to — always the
 * one stored for it, never one typed into a form.
 */
#include "extern.h"

static const char *const role_names[ROLE__MAX] = {
	[ROLE_CUSTOMER] = "customer", [ROLE_AGENT] = "agent", [ROLE_ADMIN] = "admin",
};
static const char *const state_names[ACCT__MAX] = {
	[ACCT_ACTIVE] = "active", [ACCT_PENDING] = "pending", [ACCT_REJECTED] = "rejected",
	[ACCT_DISABLED] = "disabled", [ACCT_DELETED] = "deleted",
};

const char *role_name(enum role r)
{
	return (unsigned)r < ROLE__MAX ? role_names[r] : "?";
}

int role_parse(const char *s, enum role *out)
{
	int i = str_lookup(role_names, ROLE__MAX, s);

	if (i < 0)
		return -1;
	*out = (enum role)i;
	return 0;
}

const char *account_state_name(enum account_state st)
{
	return (unsigned)st < ACCT__MAX ? state_names[st] : "?";
}

int account_state_parse(const char *s, enum account_state *out)
{
	int i = str_lookup(state_names, ACCT__MAX, s);

	if (i < 0)
		return -1;
	*out = (enum account_state)i;
	return 0;
}

static const char Q_INSERT[] =
    "INSERT INTO users (email, first_name, last_name, role, state, password_hash, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, NOW(), NOW())";
static const char Q_EMAIL_TAKEN[] = "SELECT 1 FROM users WHERE email = ?";
static const char Q_EMAIL[] = "SELECT email FROM users WHERE id = ?";
static const char Q_ACTIVE_EMAIL[] = "SELECT email FROM users WHERE id = ? AND state = 'active'";

/* user_insert: a new account row; its id, 0 when the email is taken,
 * -1 on failure.  In the caller's transaction. */
long long user_insert(const char *email, const char *first, const char *last,
                      enum role role, enum account_state state, const char *hash)
{
	if (db_exec(Q_INSERT, DB_ARGS(P_STR(email), P_STR(first), P_STR(last), P_STR(role_name(role)), P_STR(account_state_name(state)), P_STR(hash))) < 0)
		return db_last_err() == DB_DUP ? 0 : -1;
	return db_insert_id();
}

/* user_email_taken: 1 when an account (of any role or state) has this
 * email, 0 when none, -1 on failure. */
int user_email_taken(struct arena *a, const char *email)
{
	struct db_rows rows;
	int n = db_query(a, &rows, Q_EMAIL_TAKEN, 1, DB_ARGS(P_STR(email)));

	return n < 0 ? -1 : n > 0;
}

/* user_email: the address stored for account id (arena), or NULL when
 * there is no such account or the database failed. */
const char *user_email(struct arena *a, long long id)
{
	struct db_rows rows;

	if (db_query(a, &rows, Q_EMAIL, 1, DB_ARGS(P_INT(id))) != 1)
		return NULL;
	return DB_CELL(&rows, 0, 0);
}

/* user_active_email: *email = the address of account id while the account
 * is active.  1 found, 0 not active or no such account, -1 on failure. */
int user_active_email(struct arena *a, long long id, const char **email)
{
	struct db_rows rows;
	int n = db_query(a, &rows, Q_ACTIVE_EMAIL, 1, DB_ARGS(P_INT(id)));

	if (n == 1)
		*email = DB_CELL(&rows, 0, 0);
	return n < 0 ? -1 : n == 1;
}
