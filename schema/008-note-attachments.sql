-- 008-note-attachments.sql — files on internal notes (README "Attachments",
-- "The ticket timeline").

-- A file now belongs to the ticket's description (message_id and note_id
-- both NULL), to one message, or to one internal note, never to two: the
-- CHECK says so.  A note's files are shown and served to agents and admins
-- only, as the note is.  The table holds metadata only (the bytes are in
-- attachment_chunks), so the copy this ALTER makes is small.
ALTER TABLE attachments
  ADD COLUMN note_id BIGINT UNSIGNED NULL AFTER message_id,
  ADD KEY attachments_note (note_id),
  ADD CONSTRAINT attachments_note_fk FOREIGN KEY (note_id) REFERENCES notes (id),
  ADD CONSTRAINT attachments_one_owner CHECK (message_id IS NULL OR note_id IS NULL);
