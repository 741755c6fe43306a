-- 002-notices.sql — at most one unread new-message notice per ticket and
-- recipient until they open the ticket (README "Mail").
CREATE TABLE ticket_notices (
  ticket_id BIGINT UNSIGNED NOT NULL,
  user_id   BIGINT UNSIGNED NOT NULL,
  pending   TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (ticket_id, user_id),
  CONSTRAINT ticket_notices_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id),
  CONSTRAINT ticket_notices_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
