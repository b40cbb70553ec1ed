"""E.164 normalisation: the notations of the legacy export and of caller numbers."""

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import e164

POLAND = e164.NumberPlan(country_code="48", national_lengths=frozenset({9}))
GERMANY_LIKE = e164.NumberPlan(
    country_code="49", national_lengths=frozenset({10}), trunk_prefix="0"
)


@pytest.mark.parametrize(
    "written",
    [
        "+48221234567",
        "0048221234567",
        "48221234567",
        "221234567",
        "+48 22 123-45-67",
        "(22) 123 45 67",
    ],
)
def test_every_common_notation_gives_the_same_number(written):
    assert e164.normalise(written, POLAND) == "+48221234567"


def test_trunk_prefix_is_dropped_from_national_numbers():
    assert e164.normalise("030 1234 5678", GERMANY_LIKE) == "+493012345678"


def test_foreign_number_with_international_prefix_keeps_its_country():
    assert e164.normalise("00420212345678", POLAND) == "+420212345678"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("", "empty"),
        ("22-12x-4567", "characters other than digits"),
        ("12345", "neither international"),
        ("+4812", "digits in E.164"),
        ("+1234567890123456", "digits in E.164"),
        ("+0123456789", "never starts with 0"),
        ("٢٢١٢٣٤٥٦٧", "characters other than digits"),
    ],
)
def test_unreadable_numbers_say_why(written, reason):
    with pytest.raises(e164.NumberError, match=reason):
        e164.normalise(written, POLAND)


def test_router_variant_returns_none_instead_of_raising():
    assert e164.normalise_or_none("anonymous", POLAND) is None
    assert e164.normalise_or_none("221234567", POLAND) == "+48221234567"


def test_plan_from_settings():
    plan = e164.plan_from_dict({"country_code": 48, "national_lengths": [9]})
    assert plan == POLAND


def test_router_package_uses_the_same_file():
    from pathlib import Path

    router_copy = Path(__file__).parents[2] / "roles/kamailio/files/router/sipwave_router/e164.py"
    assert router_copy.is_symlink()
    assert router_copy.resolve() == Path(e164.__file__).resolve()
