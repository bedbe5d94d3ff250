-- customer-service tickets registered by the carrier's ticketing system, and the waybills each concerns
CREATE TABLE tickets (
    id TEXT PRIMARY KEY, opened_at BIGINT NOT NULL, closed_at BIGINT, assignee TEXT,
    reads INT NOT NULL DEFAULT 0);
CREATE TABLE ticket_waybills (ticket TEXT NOT NULL REFERENCES tickets(id), no TEXT NOT NULL, PRIMARY KEY (ticket, no));
