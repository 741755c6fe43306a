-- 004-outbox-erase-codes.sql — no code stays readable at rest: erase the body
-- of every mail with an expiry (reset and set-password codes) that is no
-- longer pending; the mailer erases them from now on when it sends, fails or
-- drops one.
UPDATE outbox SET body = '' WHERE status <> 'pending' AND expires_at IS NOT NULL;
