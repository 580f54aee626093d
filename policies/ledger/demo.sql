-- Demo ledger rows (portable SQLite/PostgreSQL). The scenario the README walks through:
--   ord_1001  captured 120.00 USD, 20.00 USD already refunded  -> refundable 100.00 USD
--   ord_2002  captured 5000 JPY, nothing refunded              -> refundable 5000 JPY
--   ord_3003  captured 15.000 KWD                              -> refundable 15.000 KWD
--   mer_77    earnings 1534.56 - fees 50.00 - paid out 250.00  -> payout due 1234.56 USD

INSERT INTO merchants (id, name, currency) VALUES
    ('mer_12', 'Corner Books', 'USD'),
    ('mer_77', 'Blue Harbor Coffee', 'USD'),
    ('mer_88', 'Sakura Stationery', 'JPY'),
    ('mer_99', 'Gulf Electronics', 'KWD');

INSERT INTO accounts (id, kind, currency) VALUES
    ('cash:USD', 'asset', 'USD'),
    ('cash:JPY', 'asset', 'JPY'),
    ('cash:KWD', 'asset', 'KWD'),
    ('fee_revenue:USD', 'revenue', 'USD'),
    ('merchant_payable:mer_12', 'liability', 'USD'),
    ('merchant_payable:mer_77', 'liability', 'USD'),
    ('merchant_payable:mer_88', 'liability', 'JPY'),
    ('merchant_payable:mer_99', 'liability', 'KWD');

INSERT INTO orders (id, merchant_id, currency, amount_minor, status) VALUES
    ('ord_1001', 'mer_12', 'USD', 12000, 'partially_refunded'),
    ('ord_2002', 'mer_88', 'JPY', 5000, 'captured'),
    ('ord_3003', 'mer_99', 'KWD', 15000, 'captured'),
    ('ord_7001', 'mer_77', 'USD', 100000, 'captured'),
    ('ord_7002', 'mer_77', 'USD', 53456, 'captured');

INSERT INTO captures (id, order_id, amount_minor, currency, created_at) VALUES
    ('cap_1001', 'ord_1001', 12000, 'USD', '2026-11-01T10:00:00Z'),
    ('cap_2002', 'ord_2002', 5000, 'JPY', '2026-11-02T09:30:00Z'),
    ('cap_3003', 'ord_3003', 15000, 'KWD', '2026-11-03T08:15:00Z'),
    ('cap_7001', 'ord_7001', 100000, 'USD', '2026-11-04T12:00:00Z'),
    ('cap_7002', 'ord_7002', 53456, 'USD', '2026-11-05T16:45:00Z');

INSERT INTO refunds (id, order_id, amount_minor, currency, created_at) VALUES
    ('ref_1001a', 'ord_1001', 2000, 'USD', '2026-11-06T11:00:00Z');

INSERT INTO fees (id, merchant_id, order_id, amount_minor, currency, created_at) VALUES
    ('fee_7001', 'mer_77', 'ord_7001', 3000, 'USD', '2026-11-04T12:00:00Z'),
    ('fee_7002', 'mer_77', 'ord_7002', 2000, 'USD', '2026-11-05T16:45:00Z');

INSERT INTO payouts (id, merchant_id, amount_minor, currency, created_at) VALUES
    ('po_77a', 'mer_77', 25000, 'USD', '2026-11-10T00:00:00Z');

INSERT INTO journal_entries (id, ref_type, ref_id, created_at) VALUES
    ('je_cap_1001', 'capture', 'cap_1001', '2026-11-01T10:00:00Z'),
    ('je_cap_2002', 'capture', 'cap_2002', '2026-11-02T09:30:00Z'),
    ('je_cap_3003', 'capture', 'cap_3003', '2026-11-03T08:15:00Z'),
    ('je_cap_7001', 'capture', 'cap_7001', '2026-11-04T12:00:00Z'),
    ('je_cap_7002', 'capture', 'cap_7002', '2026-11-05T16:45:00Z'),
    ('je_ref_1001a', 'refund', 'ref_1001a', '2026-11-06T11:00:00Z'),
    ('je_fee_7001', 'fee', 'fee_7001', '2026-11-04T12:00:00Z'),
    ('je_fee_7002', 'fee', 'fee_7002', '2026-11-05T16:45:00Z'),
    ('je_po_77a', 'payout', 'po_77a', '2026-11-10T00:00:00Z');

INSERT INTO postings (entry_id, account_id, amount_minor) VALUES
    ('je_cap_1001', 'cash:USD', 12000),
    ('je_cap_1001', 'merchant_payable:mer_12', -12000),
    ('je_cap_2002', 'cash:JPY', 5000),
    ('je_cap_2002', 'merchant_payable:mer_88', -5000),
    ('je_cap_3003', 'cash:KWD', 15000),
    ('je_cap_3003', 'merchant_payable:mer_99', -15000),
    ('je_cap_7001', 'cash:USD', 100000),
    ('je_cap_7001', 'merchant_payable:mer_77', -100000),
    ('je_cap_7002', 'cash:USD', 53456),
    ('je_cap_7002', 'merchant_payable:mer_77', -53456),
    ('je_ref_1001a', 'merchant_payable:mer_12', 2000),
    ('je_ref_1001a', 'cash:USD', -2000),
    ('je_fee_7001', 'merchant_payable:mer_77', 3000),
    ('je_fee_7001', 'fee_revenue:USD', -3000),
    ('je_fee_7002', 'merchant_payable:mer_77', 2000),
    ('je_fee_7002', 'fee_revenue:USD', -2000),
    ('je_po_77a', 'merchant_payable:mer_77', 25000),
    ('je_po_77a', 'cash:USD', -25000);
