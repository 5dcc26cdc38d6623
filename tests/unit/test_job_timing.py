"""The job clocks of ``shared/job_timing.py`` keep their promises, and the workers use them."""

from __future__ import annotations

import pytest

from shared import job_timing


def test_the_numbers_keep_their_order() -> None:
    job_timing.check_order()
    takeover = job_timing.JOBS_VISIBILITY_TIMEOUT + job_timing.UNACKED_SWEEP_SECONDS + job_timing.UNACKED_MUTEX_SECONDS
    assert takeover < job_timing.TAKEOVER_SECONDS <= 120
    assert job_timing.LEASE_SECONDS < job_timing.TAKEOVER_SECONDS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBS_VISIBILITY_TIMEOUT", 900),  # a dead worker's slice waits 15 minutes
        ("DELIVERY_RENEW_SECONDS", 30),  # a live slice renewed once per visibility timeout: a pause loses it
        ("UNACKED_SWEEP_SECONDS", 100),  # kombu's default sweep period
        ("LEASE_SECONDS", 600),  # a rerun refused for 10 minutes
        ("LEASE_RENEW_SECONDS", 60),
        ("SLICE_SOFT_TIME_LIMIT", 400),
        ("SOFT_SHUTDOWN_SECONDS", 90),
    ],
)
def test_a_number_out_of_order_is_refused(monkeypatch, name: str, value: int) -> None:
    monkeypatch.setattr(job_timing, name, value)
    with pytest.raises(ValueError):
        job_timing.check_order()


def test_the_job_connection_and_the_worker_use_them() -> None:
    from shared.celery_app import base_celery_config, make_service_app
    from shared.job_delivery_renewal import DeliveryRenewalStep
    from baitiao import registry

    options = base_celery_config("redis://127.0.0.1:6379/0")["broker_transport_options"]
    assert options == job_timing.jobs_transport_options()
    assert options["visibility_timeout"] == job_timing.JOBS_VISIBILITY_TIMEOUT
    app = make_service_app(registry.definition("accounts"))
    assert DeliveryRenewalStep in app.steps["worker"]
