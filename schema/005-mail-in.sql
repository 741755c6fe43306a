-- 005-mail-in.sql — the email channel (README "Email channel").

-- Reply tokens: each ticket mail to its customer or agent carries a fresh
-- one in Reply-To (LOCAL+TOKEN@DOMAIN).  Only its SHA-256 is kept.  A
-- person's tokens for a ticket are deleted when they lose access to it
-- (reassignment, disabling, deletion).
CREATE TABLE reply_tokens (
  token_hash CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  ticket_id  BIGINT UNSIGNED NOT NULL,
  user_id    BIGINT UNSIGNED NOT NULL,
  created_at DATETIME NOT NULL,
  KEY reply_tokens_ticket_user (ticket_id, user_id),
  KEY reply_tokens_user (user_id),
  CONSTRAINT reply_tokens_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id),
  CONSTRAINT reply_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- the Message-ID of a ticket's first notification: every later mail about
-- the ticket names it in In-Reply-To and References, so clients thread them
ALTER TABLE tickets ADD COLUMN mail_thread VARCHAR(128) CHARACTER SET ascii NULL;
-- Reply-To (it holds a token: erased once the mail is sent, failed or
-- dropped) and the thread's first Message-ID
ALTER TABLE outbox
  ADD COLUMN reply_to VARCHAR(254) CHARACTER SET ascii NULL,
  ADD COLUMN in_reply_to VARCHAR(128) CHARACTER SET ascii NULL;

-- Every inbound mail received, by the SHA-256 of its Message-ID (of its raw
-- bytes when it has none): the unique key makes a second delivery of the
-- same mail (an MTA retry, two IMAP fetchers) a no-op.  Also what the
-- per-sender limits count.
CREATE TABLE mail_in (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  msg_key     CHAR(64) CHARACTER SET ascii NOT NULL,
  received_at DATETIME NOT NULL,
  outcome     ENUM('automatic','message','ticket','closed','rejected') NOT NULL,
  from_addr   VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  ticket_id   BIGINT UNSIGNED NULL,
  UNIQUE KEY mail_in_key (msg_key),
  KEY mail_in_from (from_addr, outcome, received_at),
  KEY mail_in_ticket (ticket_id, from_addr, outcome, received_at),
  KEY mail_in_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The rejected-mail list: kept whole (raw bytes in 1 MiB chunks, so no
-- size runs into max_allowed_packet) until an admin deletes it or
-- keep_rejected_days pass.
CREATE TABLE rejected_mail (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  received_at DATETIME NOT NULL,
  from_addr   VARCHAR(254) NOT NULL DEFAULT '',
  subject     VARCHAR(255) NOT NULL DEFAULT '',
  reason      ENUM('unparseable','too_large','token_sender','bad_token','unknown_sender',
                   'not_customer','rate_limited','empty','too_long') NOT NULL,
  size        BIGINT UNSIGNED NOT NULL,
  KEY rejected_mail_received (received_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE rejected_mail_chunks (
  mail_id BIGINT UNSIGNED NOT NULL,
  seq     INT UNSIGNED NOT NULL,
  data    MEDIUMBLOB NOT NULL,
  PRIMARY KEY (mail_id, seq),
  CONSTRAINT rejected_mail_chunks_fk FOREIGN KEY (mail_id) REFERENCES rejected_mail (id)
    ON DELETE CASCADE
) ENGINE=InnoDB;

-- Counters of the email channel for /metrics, written in the transaction
-- of each outcome (ccr-admin mail-in is not a ccrd process).  Spread over
-- shards (the writer's pid mod 8) so concurrent deliveries seldom meet on
-- one row; /metrics sums them.
CREATE TABLE mail_counters (
  name  VARCHAR(40) CHARACTER SET ascii NOT NULL,
  shard TINYINT UNSIGNED NOT NULL,
  n     BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (name, shard)
) ENGINE=InnoDB;

-- The IMAP fetchers' claims: a fetcher claims a message (by mailbox and
-- UID) before it downloads it, so fetchers on several hosts do not process
-- one message twice; a lease lets another take over from a crashed one.
-- mailbox_key: SHA-256 of the URL, user, folder and UIDVALIDITY.
CREATE TABLE imap_claims (
  mailbox_key CHAR(64) CHARACTER SET ascii NOT NULL,
  uid         BIGINT UNSIGNED NOT NULL,
  claimed_by  VARCHAR(128) NOT NULL,
  lease_until DATETIME NOT NULL,
  PRIMARY KEY (mailbox_key, uid),
  KEY imap_claims_lease (lease_until)
) ENGINE=InnoDB;
