-- Where each image stands with each signing profile (see `signing.rs`).
CREATE TABLE signing_status (
    repository     TEXT COLLATE "C" NOT NULL,
    digest         TEXT COLLATE "C" NOT NULL,
    profile_arn    TEXT COLLATE "C" NOT NULL,
    status         TEXT NOT NULL,
    failure_code   TEXT,
    failure_reason TEXT,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (repository, digest, profile_arn)
);
