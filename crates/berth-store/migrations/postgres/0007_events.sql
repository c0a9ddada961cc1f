-- Events (EventBridge's detail-type and detail), newest last.
CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    detail_type  TEXT NOT NULL,
    detail       TEXT NOT NULL
);
