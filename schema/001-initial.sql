-- 001-initial.sql — the tables of README "Roles and the ticket life",
-- "Accounts and security" and "Mail", utf8mb4 throughout.
-- Times are UTC DATETIMEs (every connection sets time_zone = '+00:00').

CREATE TABLE users (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email         VARCHAR(254) NOT NULL,
  first_name    VARCHAR(64) NOT NULL,
  last_name     VARCHAR(64) NOT NULL,
  role          ENUM('customer','agent','admin') NOT NULL,
  state         ENUM('active','pending','rejected','disabled','deleted') NOT NULL,
  password_hash VARCHAR(255) NULL,
  created_at    DATETIME NOT NULL,
  updated_at    DATETIME NOT NULL,
  UNIQUE KEY users_email (email),
  KEY users_role_state (role, state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sessions (
  id_hash    CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  user_id    BIGINT UNSIGNED NOT NULL,
  csrf       CHAR(64) CHARACTER SET ascii NOT NULL,
  created_at DATETIME NOT NULL,
  last_seen  DATETIME NOT NULL,
  addr       VARCHAR(64) NOT NULL DEFAULT '',
  KEY sessions_user (user_id),
  KEY sessions_last_seen (last_seen),
  CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE tickets (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id   BIGINT UNSIGNED NOT NULL,
  agent_id      BIGINT UNSIGNED NULL,
  subject       VARCHAR(200) NOT NULL,
  description   TEXT NOT NULL,
  priority      ENUM('low','normal','high','urgent') NOT NULL DEFAULT 'normal',
  status        ENUM('open','resolved','closed') NOT NULL DEFAULT 'open',
  created_at    DATETIME NOT NULL,
  last_activity DATETIME NOT NULL,
  resolved_at   DATETIME NULL,
  closed_at     DATETIME NULL,
  -- keyset pagination, newest activity first, per list the pages need
  KEY tickets_customer (customer_id, last_activity, id),
  KEY tickets_customer_status (customer_id, status, last_activity, id),
  KEY tickets_agent (agent_id, last_activity, id),
  KEY tickets_agent_status (agent_id, status, last_activity, id),
  KEY tickets_status (status, last_activity, id),
  KEY tickets_activity (last_activity, id),
  KEY tickets_resolved (status, resolved_at),
  FULLTEXT KEY tickets_text (subject, description),
  CONSTRAINT tickets_customer_fk FOREIGN KEY (customer_id) REFERENCES users (id),
  CONSTRAINT tickets_agent_fk FOREIGN KEY (agent_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE messages (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ticket_id  BIGINT UNSIGNED NOT NULL,
  author_id  BIGINT UNSIGNED NOT NULL,
  body       TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  KEY messages_ticket (ticket_id, id),
  CONSTRAINT messages_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id),
  CONSTRAINT messages_author_fk FOREIGN KEY (author_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE ratings (
  ticket_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  score      TINYINT UNSIGNED NOT NULL,
  comment    VARCHAR(2000) NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL,
  CONSTRAINT ratings_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- one-time codes: password reset (10 min) and agent invitation (72 h)
CREATE TABLE password_codes (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id    BIGINT UNSIGNED NOT NULL,
  purpose    ENUM('reset','invite') NOT NULL,
  code_hash  CHAR(64) CHARACTER SET ascii NOT NULL,
  created_at DATETIME NOT NULL,
  expires_at DATETIME NOT NULL,
  tries      INT NOT NULL DEFAULT 0,
  used_at    DATETIME NULL,
  KEY password_codes_user (user_id, created_at),
  KEY password_codes_expires (expires_at),
  CONSTRAINT password_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- failed logins, per email and per client address (the login throttle)
CREATE TABLE login_failures (
  id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind    ENUM('email','addr') NOT NULL,
  subject VARCHAR(254) NOT NULL,
  at      DATETIME NOT NULL,
  KEY login_failures_subject (kind, subject, at),
  KEY login_failures_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- the mail outbox (README "Mail"): written in the transaction of the change
CREATE TABLE outbox (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind            VARCHAR(40) NOT NULL,
  to_addr         VARCHAR(254) NOT NULL,
  subject         VARCHAR(255) NOT NULL,
  body            MEDIUMTEXT NOT NULL,
  message_id      VARCHAR(128) NOT NULL,
  status          ENUM('pending','sent','failed','dropped') NOT NULL DEFAULT 'pending',
  attempts        INT NOT NULL DEFAULT 0,
  created_at      DATETIME NOT NULL,
  next_attempt_at DATETIME NOT NULL,
  expires_at      DATETIME NULL,
  claimed_by      VARCHAR(128) NULL,
  lease_until     DATETIME NULL,
  last_error      VARCHAR(512) NULL,
  sent_at         DATETIME NULL,
  ticket_id       BIGINT UNSIGNED NULL,
  user_id         BIGINT UNSIGNED NULL,
  UNIQUE KEY outbox_message_id (message_id),
  KEY outbox_due (status, next_attempt_at),
  KEY outbox_ticket (ticket_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE audit_log (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  at         DATETIME NOT NULL,
  user_id    BIGINT UNSIGNED NULL,
  actor_id   BIGINT UNSIGNED NULL,
  event      VARCHAR(64) NOT NULL,
  detail     VARCHAR(255) NOT NULL DEFAULT '',
  addr       VARCHAR(64) NOT NULL DEFAULT '',
  request_id VARCHAR(40) NOT NULL DEFAULT '',
  KEY audit_log_at (at),
  KEY audit_log_user (user_id, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
