-- Events (EventBridge's detail-type and detail), newest last.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    detail_type  TEXT NOT NULL,
    detail       TEXT NOT NULL
);
