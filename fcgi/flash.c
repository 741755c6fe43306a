/*
 * flash.c — the one-time message of the next page ("Ticket created"): a
 * number in the `ccr_flash` cookie naming one of these fixed messages, so
 * no user text ever travels in it.
 */
#include <stdlib.h>

#include "extern.h"

static const struct {
	const char *text, *kind;
} flashes[FLASH__MAX] = {
	[FLASH_NONE] = { NULL, NULL },
	[FLASH_WELCOME] = { "Welcome", "ok" },
	[FLASH_AGENT_REQUESTED] = { "Your request was sent to the admin", "ok" },
	[FLASH_RESET_SENT] = { "If an account exists for that email, a code has been sent", "ok" },
	[FLASH_PASSWORD_CHANGED] = { "Password changed. Please log in", "ok" },
	[FLASH_LOGGED_OUT] = { "You have been logged out", "ok" },
	[FLASH_ACCOUNT_DELETED] = { "Your account has been deleted", "ok" },
	[FLASH_TICKET_CREATED] = { "Ticket created", "ok" },
	[FLASH_AGENT_ASSIGNED] = { "Agent assigned", "ok" },
	[FLASH_TICKET_CLOSED] = { "Ticket closed", "ok" },
	[FLASH_TICKET_RESOLVED] = { "Ticket resolved", "ok" },
	[FLASH_TICKET_REOPENED] = { "Ticket reopened", "ok" },
	[FLASH_RATED] = { "Thank you for your rating", "ok" },
	[FLASH_AGENT_CREATED] = { "Agent created", "ok" },
	[FLASH_AGENT_APPROVED] = { "Agent approved", "ok" },
	[FLASH_AGENT_REJECTED] = { "Agent request rejected", "ok" },
	[FLASH_AGENT_DISABLED] = { "Agent disabled", "ok" },
	[FLASH_SESSION_ENDED] = { "Please log in again", "error" },
	[FLASH_NOTE_ADDED] = { "Note added", "ok" },
	[FLASH_PRIORITY_CHANGED] = { "Priority changed", "ok" },
	[FLASH_REPLY_SAVED] = { "Reply saved", "ok" },
	[FLASH_REPLY_DELETED] = { "Reply deleted", "ok" },
	[FLASH_2FA_OFF] = { "Two-factor sign-in is off", "ok" },
	[FLASH_2FA_RESET] = { "Two-factor sign-in reset", "ok" },
	[FLASH_SESSION_ENDED_ONE] = { "Session ended", "ok" },
	[FLASH_SESSIONS_ENDED] = { "Every other session ended", "ok" },
	[FLASH_2FA_REQUIRED] = { "Set up two-factor sign-in to continue", "error" },
	[FLASH_AVAILABLE] = { "You are available for new tickets", "ok" },
	[FLASH_UNAVAILABLE] = { "You are unavailable for new tickets", "ok" },
	[FLASH_TOKEN_REVOKED] = { "Token revoked", "ok" },
	[FLASH_WEBHOOK_DELETED] = { "Webhook endpoint deleted", "ok" },
};

/* flash_set: show message f on the next page this browser loads (within 60 s). */
void flash_set(struct request *r, enum flash f)
{
	if (r->api)   /* the API sets no cookies */
		return;
	cookie_set(r, "ccr_flash", arena_printf(r->a, "%d", (int)f), 60);
}

/* flash_take: the pending message, if any, into the layout's FLASH section;
 * the cookie is cleared so it shows once. */
void flash_take(struct request *r, struct vdict *top)
{
	const char *c = cookie_get(r, "ccr_flash");
	char *end;
	long f;

	if (c == NULL || *c == '\0')
		return;
	f = strtol(c, &end, 10);
	cookie_set(r, "ccr_flash", "", 0);
	if (*end || f <= FLASH_NONE || f >= FLASH__MAX)
		return;
	struct vdict *d = vdict_section(top, "FLASH");
	vdict_set(d, "FLASH_TEXT", flashes[f].text);
	vdict_set(d, "FLASH_KIND", flashes[f].kind);
}
