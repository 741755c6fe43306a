-- 012-api.sql — personal API tokens and their rate limit (README "JSON API").

-- A person's API tokens: only the SHA-256 of the secret is kept.  Revoking
-- one deletes its row; every event that ends all of a person's sessions
-- (password change or reset, account disabled or deleted) deletes all of
-- their tokens in the same transaction.  At most 10 per person (checked by
-- the page under a lock on the person's row).
CREATE TABLE api_tokens (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id      BIGINT UNSIGNED NOT NULL,
  name         VARCHAR(64) NOT NULL,
  token_hash   CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at   DATETIME NOT NULL,
  last_used_at DATETIME NULL,
  UNIQUE KEY api_tokens_hash (token_hash),
  KEY api_tokens_user (user_id, id),
  CONSTRAINT api_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The per-token rate limit ([api] requests_per_minute): one counter row per
-- token and minute (unix time / 60), bumped by INSERT … ON DUPLICATE KEY
-- UPDATE, so every worker on every host counts into the same row.  A
-- token's older minutes are deleted when its next minute starts.
CREATE TABLE api_rate (
  token_id BIGINT UNSIGNED NOT NULL,
  minute   INT UNSIGNED NOT NULL,
  hits     INT UNSIGNED NOT NULL,
  PRIMARY KEY (token_id, minute),
  CONSTRAINT api_rate_token_fk FOREIGN KEY (token_id) REFERENCES api_tokens (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
