-- The test clock's time (microseconds), so that it never moves back when the
-- service restarts. One row at most.
CREATE TABLE test_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    now BIGINT NOT NULL
);
