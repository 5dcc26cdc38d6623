"""The accounts service's pure domain rules (RULES.md sections 1 to 5).

No database, no broker, no clock, no settings: every function takes plain values
(dates, Decimals, a rules section of ``shared.rules.ProductRules``) and returns a frozen
dataclass or a decision. The service layer's set-based SQL is tested against these
functions, so each one is the readable reference of one rule:

* ``billing``       statements, due dates, purchase decisions, the available limit;
* ``overdue``       DPD, penalty interest, late fee, the 24% cap, ``close_bill_for_day``
                    (one bill, one ``daily_close``), ``grace_waiver``;
* ``lock_ladder``   levels, measures, linked accounts, limit cut and restore, cure;
* ``allocation``    ``allocate_repayment`` and the late-arriving repayment's reversals;
* ``credit_report`` bureau statuses, marks and their retention;
* ``ledger``        double-entry postings for each business event.
"""
