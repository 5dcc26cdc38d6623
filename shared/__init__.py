"""The project's common code: wire schemas, bus, money, clock, settings, db, logging.

Nothing in here knows any one service's business; services import from here and
never from each other.
"""
