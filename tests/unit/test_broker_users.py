"""The broker's ACL users: outside producers write only where their own event types go."""

from __future__ import annotations

from shared.bus.broker_users import SYSTEM_USERS, acl_rules, queues_fed_by
from shared.bus.topology import SERVICE_BINDINGS, services_bound_to
from shared.events.owners import OUTSIDE_PRODUCERS, types_owned_by


def test_a_payment_gateway_feeds_accounts_and_the_catch_all_only() -> None:
    assert queues_fed_by("payment-gateway") == ("accounts.events", "unrouted")
    rules = acl_rules()["payment-gateway"]
    assert "%W~collections.events" not in rules and "%W~restructuring.events" not in rules
    assert rules.startswith("resetchannels -@all ") and "~*" not in rules.replace("%W~", "").replace("%R~", "")


def test_every_outside_producer_may_push_onto_each_queue_its_types_are_routed_to() -> None:
    for producer in OUTSIDE_PRODUCERS:
        fed = set(queues_fed_by(producer))
        for event_type in types_owned_by(producer):
            assert {f"{s}.events" for s in services_bound_to(event_type)} <= fed, (producer, event_type)
        assert "%R~_kombu.binding.baitiao.events" in acl_rules()[producer]


def test_services_bound_to_follows_the_bindings_and_their_wildcards() -> None:
    assert services_bound_to("repayment.received") == ("accounts",)
    assert services_bound_to("plan.installment.paid") == ("collections",)
    assert set(services_bound_to("credit.line.granted")) == set(SERVICE_BINDINGS)
    assert services_bound_to("no.such.type") == ()


def test_the_systems_own_users_may_not_flush_or_reconfigure_the_broker() -> None:
    for user in SYSTEM_USERS:
        assert "-@dangerous" in acl_rules()[user]


def test_the_command_line_prints_the_users_file_beside_the_embedded_brokers_commands() -> None:
    from click.testing import CliRunner

    from baitiao.cli import broker, main
    from tests.deployment.compose import ROOT

    printed = CliRunner().invoke(main, ["broker", "users"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == (ROOT / "deploy" / "redis" / "users.acl").read_text()
    assert {"start", "stop", "users"} <= set(broker.commands)  # type: ignore[attr-defined]
