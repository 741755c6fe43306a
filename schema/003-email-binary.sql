-- 003-email-binary.sql — emails are compared byte for byte: with
-- utf8mb4_unicode_ci "acmé.com" equalled "acme.com" and "ß" equalled "ss",
-- so a look-alike address typed into a form found someone else's account.
-- A binary collation is stricter than the old one, so rows unique before
-- stay unique.  login_failures.subject holds the email (kind 'email') the
-- throttle counts by, so it compares the same way.
ALTER TABLE users
  MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE login_failures
  MODIFY subject VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
