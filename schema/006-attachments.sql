-- 006-attachments.sql — files on a ticket (README "Attachments").

-- One row per stored file: on the ticket's own description (message_id
-- NULL) or on one message.  content_type is what libmagic made of the bytes
-- at upload, never what the client claimed; sha256 is the ETag.  The
-- uploader is kept when an account is deleted (accounts are anonymised,
-- not removed), so the files stay on its tickets.
CREATE TABLE attachments (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ticket_id    BIGINT UNSIGNED NOT NULL,
  message_id   BIGINT UNSIGNED NULL,
  filename     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  content_type VARCHAR(127) CHARACTER SET ascii NOT NULL,
  size         BIGINT UNSIGNED NOT NULL,
  sha256       CHAR(64) CHARACTER SET ascii NOT NULL,
  uploader_id  BIGINT UNSIGNED NOT NULL,
  created_at   DATETIME NOT NULL,
  KEY attachments_ticket (ticket_id, message_id, id),
  KEY attachments_message (message_id),
  CONSTRAINT attachments_ticket_fk FOREIGN KEY (ticket_id) REFERENCES tickets (id),
  CONSTRAINT attachments_message_fk FOREIGN KEY (message_id) REFERENCES messages (id),
  CONSTRAINT attachments_uploader_fk FOREIGN KEY (uploader_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The bytes, in pieces of at most 1 MiB (seq 0, 1, …; a 0-byte file has
-- one empty piece), so no file runs into max_allowed_packet and a download
-- reads a few pieces at a time.
CREATE TABLE attachment_chunks (
  attachment_id BIGINT UNSIGNED NOT NULL,
  seq           INT UNSIGNED NOT NULL,
  data          MEDIUMBLOB NOT NULL,
  PRIMARY KEY (attachment_id, seq),
  CONSTRAINT attachment_chunks_fk FOREIGN KEY (attachment_id) REFERENCES attachments (id)
    ON DELETE CASCADE
) ENGINE=InnoDB;
