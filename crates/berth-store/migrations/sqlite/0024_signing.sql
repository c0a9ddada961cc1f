-- Where each image stands with each signing profile (see `signing.rs`).
CREATE TABLE signing_status (
    repository     TEXT NOT NULL,
    digest         TEXT NOT NULL,
    profile_arn    TEXT NOT NULL,
    status         TEXT NOT NULL,
    failure_code   TEXT,
    failure_reason TEXT,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (repository, digest, profile_arn)
);
