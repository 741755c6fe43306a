-- 011-sla-reports.sql — service levels and report summaries (README
-- "Service levels", "Reports").

-- The service-level clock of a ticket runs only while it is open: time
-- spent resolved (awaiting the customer) or closed does not count.
-- sla_paused_s is the paused time so far, sla_paused_since when the
-- current pause began (NULL while open).  first_response_at is the
-- assigned agent's first message, first_response_s the open time it took;
-- resolution_at the latest move from open to resolved or closed,
-- resolution_s the open time from creation to it.  The due columns are
-- the targets of [sla] moved on by the pauses, NULL when met, off or
-- paused; sla_due is the earlier of the two while the ticket is open, so
-- "overdue" is the index range sla_due < NOW().  All maintained by
-- sla_refresh in the transaction of each change (created, message,
-- status, priority).
ALTER TABLE tickets
  ADD COLUMN sla_paused_s       INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN sla_paused_since   DATETIME NULL,
  ADD COLUMN first_response_at  DATETIME NULL,
  ADD COLUMN first_response_s   INT UNSIGNED NULL,
  ADD COLUMN resolution_at      DATETIME NULL,
  ADD COLUMN resolution_s       INT UNSIGNED NULL,
  ADD COLUMN first_response_due DATETIME NULL,
  ADD COLUMN resolution_due     DATETIME NULL,
  ADD COLUMN sla_due            DATETIME NULL,
  ADD KEY tickets_sla_due (sla_due, id),
  ADD KEY tickets_agent_sla (agent_id, sla_due, id),
  ADD KEY tickets_first_response (first_response_at, priority, first_response_s),
  ADD KEY tickets_resolution (resolution_at, priority, resolution_s),
  ADD KEY tickets_backlog (status, priority, created_at);

-- Tickets from before this migration: not open = paused since it stopped
-- being open.  Their due columns are filled by ccr-admin reports-rebuild.
UPDATE tickets SET sla_paused_since = COALESCE(closed_at, resolved_at, last_activity)
 WHERE status <> 'open';

-- One row per breach mailed by ccr-admin sla-check: a ticket's target
-- (first response or resolution) missed at due_at.  A due moved by a
-- pause or a priority change and missed again is a new breach.
CREATE TABLE sla_breaches (
  ticket_id BIGINT UNSIGNED NOT NULL,
  target    ENUM('first_response','resolution') NOT NULL,
  due_at    DATETIME NOT NULL,
  mailed_at DATETIME NOT NULL,
  PRIMARY KEY (ticket_id, target, due_at),
  CONSTRAINT sla_breaches_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tickets created and closed per day (a close is an event: a ticket closed,
-- reopened and closed again counts twice), kept by the transactions that
-- create and close; ccr-admin reports-rebuild recomputes it from tickets
-- and the timeline.
CREATE TABLE report_daily (
  day     DATE NOT NULL PRIMARY KEY,
  created INT UNSIGNED NOT NULL DEFAULT 0,
  closed  INT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Ratings per day of rating and agent of the ticket (0 = none): count and
-- sum of scores.
CREATE TABLE report_csat (
  day      DATE NOT NULL,
  agent_id BIGINT UNSIGNED NOT NULL,
  ratings  INT UNSIGNED NOT NULL DEFAULT 0,
  score    INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (day, agent_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
