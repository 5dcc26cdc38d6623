"""A worker refuses to start on a kombu whose Redis internals the bus was not tested against."""

from __future__ import annotations

import kombu
import pytest

from baitiao import registry
from shared.bus.kombu_redis import TESTED_KOMBU, UntestedKombuError, check_kombu_version
from shared.celery_app import make_service_app
from shared.settings import Settings


def test_the_installed_kombu_is_the_tested_one() -> None:
    check_kombu_version()


@pytest.mark.parametrize("version", ["5.7.0", "5.7.12", "5.7.1rc1"])
def test_any_release_of_the_tested_minor_version_is_accepted(version: str) -> None:
    assert TESTED_KOMBU == (5, 7)
    check_kombu_version(version)


@pytest.mark.parametrize("version", ["5.8.0", "5.6.3", "6.0.0", "4.7.0", "5.70.0", "unknown"])
def test_another_version_is_refused_naming_both(version: str) -> None:
    with pytest.raises(UntestedKombuError) as refused:
        check_kombu_version(version)
    message = str(refused.value)
    assert f"kombu {version} is installed" in message and ">=5.7,<5.8" in message


def test_a_service_app_is_not_made_on_an_untested_kombu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu, "__version__", "5.8.0")
    with pytest.raises(UntestedKombuError, match="kombu 5.8.0 is installed"):
        make_service_app(registry.definition("collections"), Settings(broker_url="redis://127.0.0.1:1/0"))
