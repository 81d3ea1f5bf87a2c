-- The sign-in rate limit's windows, one a client (an IPv4 address, or an IPv6 /64): the
-- attempts counted since the window started. In the database, so that replicas behind a load
-- balancer count one client's attempts together; each replica alone used to allow the whole
-- limit, so N replicas allowed N times as many guesses a minute. A window that has ended is
-- deleted at the next attempt of any client.
CREATE TABLE sign_in_windows (
    client_key TEXT PRIMARY KEY NOT NULL,
    started_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE INDEX sign_in_windows_started ON sign_in_windows(started_at);
