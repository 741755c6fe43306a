-- 013-webhooks.sql — webhook endpoints and their delivery queue (README
-- "Webhooks").

-- An endpoint an admin registered: where to POST, which events, and the
-- signing secret sealed with AES-256-GCM under a key derived from
-- [security] secret_key (never stored in clear).
CREATE TABLE webhooks (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  url         VARCHAR(2000) NOT NULL,
  events      SET('ticket.created','ticket.assigned','message.created','ticket.resolved',
                  'ticket.closed','ticket.rated') NOT NULL,
  secret_enc  VARBINARY(128) NOT NULL,
  created_by  BIGINT UNSIGNED NULL,
  created_at  DATETIME NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per event and subscribed endpoint, written in the transaction of
-- the change.  event_id is the idempotency id the receiver sees (the same
-- for every endpoint and every attempt of one event); body is the JSON as
-- it is signed and sent.  The sender claims due rows like the mailer
-- claims the outbox: SELECT … FOR UPDATE SKIP LOCKED plus a write of
-- claimed_by and lease_until, so on Galera a second claimer fails (1213).
-- Deleting an endpoint deletes its queue: nothing more is sent to it.
CREATE TABLE webhook_deliveries (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  webhook_id      BIGINT UNSIGNED NOT NULL,
  event_id        CHAR(32) CHARACTER SET ascii NOT NULL,
  event           ENUM('ticket.created','ticket.assigned','message.created','ticket.resolved',
                       'ticket.closed','ticket.rated') NOT NULL,
  ticket_id       BIGINT UNSIGNED NOT NULL,
  body            MEDIUMTEXT NOT NULL,
  status          ENUM('pending','sent','failed') NOT NULL DEFAULT 'pending',
  attempts        INT UNSIGNED NOT NULL DEFAULT 0,
  last_status     SMALLINT UNSIGNED NULL,
  last_error      VARCHAR(500) NULL,
  next_attempt_at DATETIME NOT NULL,
  claimed_by      VARCHAR(160) NULL,
  lease_until     DATETIME NULL,
  created_at      DATETIME NOT NULL,
  sent_at         DATETIME NULL,
  UNIQUE KEY webhook_deliveries_once (webhook_id, event_id),
  KEY webhook_deliveries_due (status, next_attempt_at),
  KEY webhook_deliveries_log (webhook_id, id),
  CONSTRAINT webhook_deliveries_hook_fk FOREIGN KEY (webhook_id) REFERENCES webhooks (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
