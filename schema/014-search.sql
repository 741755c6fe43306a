-- 014-search.sql — the search index's queue (README "Search").
--
-- The index lives in searchd (Sphinx, a real-time index); MariaDB stays the
-- source of truth.  Every change to what a ticket's search document holds
-- (subject, description, messages, notes, customer, agent, status, last
-- activity) writes or bumps its row here in the transaction of the change,
-- so the update is durable before the request answers.  The indexer (the
-- ccrd child "ccrd-search") rebuilds each queued ticket's document and
-- deletes the row only when seq is still the one it indexed: a change made
-- meanwhile keeps its row and is indexed again.
CREATE TABLE search_queue (
  ticket_id  BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  seq        BIGINT UNSIGNED NOT NULL DEFAULT 1,
  queued_at  DATETIME(3) NOT NULL,
  KEY search_queue_age (queued_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every ticket that exists when this migration runs is queued: the indexer
-- fills the new index from them (ccr-admin search-rebuild does the same in
-- bulk, faster).
INSERT INTO search_queue (ticket_id, seq, queued_at) SELECT id, 1, NOW(3) FROM tickets;

-- InnoDB FULLTEXT served the old search; nothing else reads it.
ALTER TABLE tickets DROP INDEX tickets_text;
