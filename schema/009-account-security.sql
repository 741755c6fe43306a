-- 009-account-security.sql — account security (README "Two-factor sign-in",
-- "Login alerts and sessions"): TOTP secrets (encrypted), recovery codes,
-- the half-signed-in state between password and code, known browsers, and
-- what the session list shows.

-- One TOTP secret per person (RFC 6238: 30 s, 6 digits, HMAC-SHA-1).
-- secret_enc: AES-256-GCM under a key derived from [security] secret_key,
-- nonce (12 bytes) || ciphertext || tag (16 bytes), the user id as
-- associated data: the database and its backups never hold the secret in
-- clear, and a row copied onto another account does not open.
-- state: 'pending' from the enrolment page until the first code confirms
-- it, then 'on'.  last_step: the time step of the last code accepted; a
-- code of that step or an earlier one is refused (no replay in its window).
CREATE TABLE totp (
  user_id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  secret_enc   VARBINARY(128) NOT NULL,
  state        ENUM('pending','on') NOT NULL,
  last_step    BIGINT NOT NULL DEFAULT 0,
  created_at   DATETIME NOT NULL,
  confirmed_at DATETIME NULL,
  CONSTRAINT totp_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Ten single-use recovery codes per enrolment, only their SHA-256 kept.
CREATE TABLE recovery_codes (
  id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id   BIGINT UNSIGNED NOT NULL,
  code_hash CHAR(64) CHARACTER SET ascii NOT NULL,
  used_at   DATETIME NULL,
  KEY recovery_codes_user (user_id, code_hash),
  CONSTRAINT recovery_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The half-signed-in state: the password was right, the code is awaited.
-- Not a session (it opens no page); the cookie ccr_login carries 256
-- random bits, only their SHA-256 is stored; it lasts five minutes.
CREATE TABLE login_pending (
  id_hash    CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  user_id    BIGINT UNSIGNED NOT NULL,
  next       VARCHAR(255) NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL,
  expires_at DATETIME NOT NULL,
  KEY login_pending_expires (expires_at),
  CONSTRAINT login_pending_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Browsers an account has signed in from: the long-lived ccr_device
-- cookie's SHA-256.  A sign-in from a browser not listed mails a login
-- alert (never the first sign-in of an account with none listed).
CREATE TABLE devices (
  user_id    BIGINT UNSIGNED NOT NULL,
  id_hash    CHAR(64) CHARACTER SET ascii NOT NULL,
  created_at DATETIME NOT NULL,
  last_seen  DATETIME NOT NULL,
  PRIMARY KEY (user_id, id_hash),
  KEY devices_last_seen (last_seen),
  CONSTRAINT devices_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The session list: a number to name a session in a form, and its browser.
ALTER TABLE sessions
  ADD COLUMN id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE FIRST,
  ADD COLUMN user_agent VARCHAR(255) NOT NULL DEFAULT '';

-- Wrong codes at /login/2fa count like wrong passwords: per account
-- (subject = the user id) and per client address.
ALTER TABLE login_failures
  MODIFY kind ENUM('email','addr','code_user','code_addr') NOT NULL;
