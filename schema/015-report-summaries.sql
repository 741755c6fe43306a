-- 015-report-summaries.sql — the report's durations and backlog from
-- summary rows (README "Reports"), so the page reads a few hundred rows
-- whatever the number of tickets.

-- First-response and resolution times per day (UTC, of the response or
-- resolution), target and priority, as a histogram: hist is the text
-- "bucket:count,bucket:count,…" in rising bucket order, no zero counts.
-- A duration v seconds falls in bucket v when v < 64; above, with
-- e = floor(log2 v) - 5 (so that v >> e is 32 … 63), in bucket
-- 64 + 32 (e - 1) + (v >> e) - 32: buckets 1/32 of their value wide.  A
-- percentile is read as the middle of its bucket (within 1.6 %).  Kept by
-- sla_refresh (and a priority change) in the transaction of the change;
-- a row whose last count went is deleted.
CREATE TABLE IF NOT EXISTS report_durations (
  target   ENUM('first_response','resolution') NOT NULL,
  day      DATE NOT NULL,
  priority ENUM('low','normal','high','urgent') NOT NULL,
  hist     TEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (target, day, priority)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Open tickets per day of creation (UTC) and priority: n is bumped when a
-- ticket is created or opens again and lowered when it stops being open
-- (rows reaching 0 stay; readers skip them).  report_open_month holds the
-- same counts per month (its first day), so that the "30 days or more"
-- bucket reads at most a row a month and priority, plus the days of one
-- month, instead of a row for every day of the backlog's history.
CREATE TABLE IF NOT EXISTS report_open (
  day      DATE NOT NULL,
  priority ENUM('low','normal','high','urgent') NOT NULL,
  n        INT NOT NULL,
  PRIMARY KEY (day, priority)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS report_open_month (
  month    DATE NOT NULL,
  priority ENUM('low','normal','high','urgent') NOT NULL,
  n        INT NOT NULL,
  PRIMARY KEY (month, priority)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- From the tickets as they are (ccr-admin reports-rebuild runs the same
-- statements).  LENGTH(BIN(v)) - 1 is floor(log2 v), exactly.  Safe to
-- run again after an interrupted first try.
DELETE FROM report_durations;
DELETE FROM report_open;
DELETE FROM report_open_month;
INSERT INTO report_durations (target, day, priority, hist)
SELECT 'first_response', day, priority, GROUP_CONCAT(b, ':', n ORDER BY b SEPARATOR ',')
  FROM (SELECT DATE(first_response_at) AS day, priority,
               IF(first_response_s < 64, first_response_s,
                  64 + 32 * (LENGTH(BIN(first_response_s)) - 7)
                  + (first_response_s >> (LENGTH(BIN(first_response_s)) - 6)) - 32) AS b,
               COUNT(*) AS n
          FROM tickets WHERE first_response_at IS NOT NULL GROUP BY 1, 2, 3) h
 GROUP BY day, priority;
INSERT INTO report_durations (target, day, priority, hist)
SELECT 'resolution', day, priority, GROUP_CONCAT(b, ':', n ORDER BY b SEPARATOR ',')
  FROM (SELECT DATE(resolution_at) AS day, priority,
               IF(resolution_s < 64, resolution_s,
                  64 + 32 * (LENGTH(BIN(resolution_s)) - 7)
                  + (resolution_s >> (LENGTH(BIN(resolution_s)) - 6)) - 32) AS b,
               COUNT(*) AS n
          FROM tickets WHERE resolution_at IS NOT NULL GROUP BY 1, 2, 3) h
 GROUP BY day, priority;
INSERT INTO report_open (day, priority, n)
SELECT DATE(created_at), priority, COUNT(*) FROM tickets WHERE status = 'open' GROUP BY 1, 2;
INSERT INTO report_open_month (month, priority, n)
SELECT DATE_FORMAT(created_at, '%Y-%m-01'), priority, COUNT(*) FROM tickets WHERE status = 'open'
 GROUP BY 1, 2;
