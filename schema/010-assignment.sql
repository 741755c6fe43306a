-- 010-assignment.sql — auto-assignment and agent availability (README
-- "Assignment").

-- One row per agent who ever set their availability or was assigned a
-- ticket; no row = unavailable, never assigned.  Only available agents
-- whose account is active are candidates of [tickets] auto_assign.
-- last_assigned_at is stamped by every assignment, manual or automatic:
-- ties of least_open go to the agent who waited longest (NULL first).
CREATE TABLE agent_availability (
  user_id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  available        TINYINT(1) NOT NULL DEFAULT 0,
  changed_at       DATETIME NOT NULL,
  last_assigned_at DATETIME(6) NULL,
  CONSTRAINT agent_availability_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The round robin's position: the agent who got the last automatic
-- assignment.  One row, locked (SELECT … FOR UPDATE) and written by every
-- automatic assignment whatever the mode: the lock makes assignments on
-- one server serial, the write makes two Galera nodes assigning at once
-- conflict (error 1213), so the loser is retried and each ticket gets
-- exactly one agent.
CREATE TABLE assign_cursor (
  id            TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  last_agent_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
  assigned      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  CONSTRAINT assign_cursor_one_row CHECK (id = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO assign_cursor (id, last_agent_id, assigned) VALUES (1, 0, 0);
