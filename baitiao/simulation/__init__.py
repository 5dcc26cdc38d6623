"""``baitiao simulate``: a seeded portfolio driven through the real workers and bus.

- :mod:`behaviour`: who the customers are and what they decide (seeded, event-driven);
- :mod:`wire`: publishing as an outside system (plain kombu), observing, quiescence;
- :mod:`environment`: fresh databases and broker for a run, the worker processes;
- :mod:`driver`: simulated days, phase by phase, as beat would run them;
- :mod:`tally`: figures taken from the observed events;
- :mod:`report`: figures from the services' own tables, invariants, report files.
"""
