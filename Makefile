# Shortcuts; each target is one documented command.
.PHONY: install run test test-unit bench bench-bus bench-close bench-consumers bench-relay bench-transport bench-collections bench-checkout bench-night bench-desk migrate

install:
	pip install -c constraints.txt -e ".[dev]"

run:
	baitiao simulate

test:
	python -m pytest -q

test-unit:
	python -m pytest -q tests/unit

migrate:
	baitiao db upgrade

# The benchmarks need Redis and PostgreSQL on 127.0.0.1 (BAITIAO_BROKER_URL for Redis).
bench: bench-bus bench-close bench-consumers bench-relay bench-transport bench-collections bench-checkout bench-night bench-desk


bench-bus:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/5} baitiao bench bus -n 20000

bench-close:
	baitiao bench close --accounts 1000000

bench-consumers:
	baitiao bench consumers -n 5000

bench-relay:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/5} baitiao bench relay -n 20000

bench-transport:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/5} baitiao bench transport

bench-collections:
	python scripts/bench_collections_jobs.py 2000

# The three real workers answering purchases at 100-2,000/s and a burst, beside a raw kombu
# echo; it flushes nothing but creates (and drops) databases bench_checkout_<run>_*.
bench-checkout:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/6} baitiao bench checkout

# The whole night (statements, close, plan monitor, collections-daily, the 08:00 dispatch)
# of 1,000,000 accounts through the three real workers; creates (and drops) databases
# bench_night_<run>_*.
bench-night:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/7} baitiao bench night --accounts 1000000

# The desk over 100,000 open cases (worklists and account pages, timed by the server beside
# /api/me) and its checkout door at 500/s beside the plain bus round trip, the real workers
# and `baitiao api` as processes; creates (and drops) databases bench_desk_<run>_*.
bench-desk:
	BAITIAO_BROKER_URL=$${BAITIAO_BROKER_URL:-redis://127.0.0.1:6379/8} baitiao bench desk --cases 100000
