"""The accounts service's pure domain rules (RULES.md sections 1 to 5).

No database, no broker, no clock, no settings: every function takes plain values
(dates, Decimals, a rules section of ``shared.rules.ProductRules``) and returns a frozen
dataclass or a decision. Each rule is written once: the service layer calls these
functions, or (the nightly close) applies them set-based in SQL built from the same
settings, whose worked examples the tests check against an oracle made of these
functions (``tests/support/close_oracle.py``):

* ``billing``       statements, due dates, purchase decisions, the available limit;
* ``overdue``       DPD, penalty interest, late fee, the 24% cap, ``grace_waiver``;
* ``lock_ladder``   levels, measures, linked accounts, limit cut and restore, cure;
* ``allocation``    ``allocate_repayment`` and the late-arriving repayment's reversals;
* ``credit_report`` bureau statuses, marks and their retention;
* ``ledger``        double-entry postings for each business event.
"""
