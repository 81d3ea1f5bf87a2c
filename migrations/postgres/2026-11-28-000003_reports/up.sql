-- Reports the server produced and signed: a recipient can ask whether a file is authentic.
CREATE TABLE issued_reports (
    sha256 TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    signature TEXT NOT NULL,
    parameters TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at TIMESTAMP NOT NULL
);
