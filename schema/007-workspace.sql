-- 007-workspace.sql — the agent's workspace (README "The ticket timeline",
-- "Saved replies"): internal notes, one timeline per ticket, saved replies.

-- Internal notes: written by the ticket's agent or an admin, shown to
-- agents and admins only, never mailed to the customer.
CREATE TABLE notes (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ticket_id  BIGINT UNSIGNED NOT NULL,
  author_id  BIGINT UNSIGNED NOT NULL,
  body       TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  KEY notes_ticket (ticket_id, id),
  KEY notes_author (ticket_id, author_id),
  CONSTRAINT notes_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id),
  CONSTRAINT notes_author_fk FOREIGN KEY (author_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The timeline: one row per message, note and event of a ticket, written
-- in the transaction of the change.  id is the order of the timeline and
-- the cursor of the poll (GET /tickets/{id}/messages?after=ID).
-- actor_id: who did it; agent_id: "assigned" — to whom; detail: "priority"
-- — "OLD NEW", "rated" — the score.
CREATE TABLE timeline (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ticket_id  BIGINT UNSIGNED NOT NULL,
  kind       ENUM('message','note','created','assigned','priority','resolved','closed',
                  'reopened','auto_closed','rated') NOT NULL,
  actor_id   BIGINT UNSIGNED NULL,
  message_id BIGINT UNSIGNED NULL,
  note_id    BIGINT UNSIGNED NULL,
  agent_id   BIGINT UNSIGNED NULL,
  detail     VARCHAR(64) NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL,
  KEY timeline_ticket (ticket_id, id),
  CONSTRAINT timeline_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- what was there before: each ticket's creation, then its messages in id
-- order (a ticket's time order), both in primary-key order so nothing is
-- sorted; the timeline's order only matters within a ticket
INSERT INTO timeline (ticket_id, kind, actor_id, created_at)
SELECT id, 'created', customer_id, created_at FROM tickets ORDER BY id;
INSERT INTO timeline (ticket_id, kind, actor_id, message_id, created_at)
SELECT ticket_id, 'message', author_id, id, created_at FROM messages ORDER BY id;

-- Saved replies: personal (shared = 0, its owner's) or shared (shared = 1,
-- every agent and admin may use them, admins manage them).
CREATE TABLE saved_replies (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner_id   BIGINT UNSIGNED NOT NULL,
  shared     TINYINT(1) NOT NULL DEFAULT 0,
  title      VARCHAR(100) NOT NULL,
  body       TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  KEY saved_replies_owner (owner_id, id),
  KEY saved_replies_shared (shared, id),
  CONSTRAINT saved_replies_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
