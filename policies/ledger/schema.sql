-- Demo ledger schema. Portable: runs unchanged on SQLite and PostgreSQL.
-- Amounts are integer minor units (cents for USD, yen for JPY) in BIGINT columns;
-- there are no floating-point columns anywhere.
--
-- Double-entry: every business event (capture, refund, fee, payout) is one row in its
-- own table AND one journal entry whose postings sum to zero. Debits are positive,
-- credits negative. A merchant's payable balance is the negated sum of the postings on
-- its `merchant_payable:<id>` account.

CREATE TABLE accounts (
    id       TEXT PRIMARY KEY,          -- e.g. 'cash:USD', 'merchant_payable:mer_77', 'fee_revenue:USD'
    kind     TEXT NOT NULL,             -- asset | liability | revenue
    currency TEXT NOT NULL
);

CREATE TABLE merchants (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    currency TEXT NOT NULL              -- settlement currency
);

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    currency     TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    status       TEXT NOT NULL          -- captured | refunded | partially_refunded
);

CREATE TABLE captures (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE fees (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    order_id     TEXT REFERENCES orders(id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE payouts (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE journal_entries (
    id         TEXT PRIMARY KEY,
    ref_type   TEXT NOT NULL,           -- capture | refund | fee | payout
    ref_id     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE postings (
    entry_id     TEXT NOT NULL REFERENCES journal_entries(id),
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    amount_minor BIGINT NOT NULL,       -- debit > 0, credit < 0; each entry sums to 0
    PRIMARY KEY (entry_id, account_id)
);

CREATE INDEX captures_order ON captures (order_id);
CREATE INDEX refunds_order ON refunds (order_id);
CREATE INDEX postings_account ON postings (account_id);
