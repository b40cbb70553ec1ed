"""Every module of the collection documents exactly the options it accepts.

DOCUMENTATION, EXAMPLES and RETURN must be YAML, and the documented options must match the
module's argument_spec (name, type, required, default, choices, elements), plus the options
that the action plugin of the same name consumes on the controller (CONTROLLER_ARGS).
"""

import importlib
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule

COLLECTION = (
    Path(__file__).resolve().parents[2] / "collections/ansible_collections/sipwave/platform"
)
PACKAGE = "ansible_collections.sipwave.platform.plugins"
MODULES = sorted(
    p.stem for p in (COLLECTION / "plugins/modules").glob("*.py") if p.stem != "__init__"
)
# What Ansible assumes for a key an option leaves out, in its documentation and its spec alike.
IMPLIED = {"type": "str", "required": False, "default": None, "choices": None, "elements": None}
COMPARED = tuple(IMPLIED)


class CapturedSpec(Exception):
    def __init__(self, spec: dict):
        super().__init__("argument_spec captured")
        self.spec = spec


def argument_spec(name: str, monkeypatch) -> dict:
    """The argument_spec a module's main() hands to AnsibleModule (stopped right there)."""

    def capture(_self, *args, **kwargs):
        raise CapturedSpec(kwargs["argument_spec"] if "argument_spec" in kwargs else args[0])

    monkeypatch.setattr(AnsibleModule, "__init__", capture)
    module = importlib.import_module(f"{PACKAGE}.modules.{name}")
    with pytest.raises(CapturedSpec) as captured:
        module.main()
    return captured.value.spec


def controller_options(name: str) -> tuple[str, ...]:
    """Options the action plugin of the same name takes away before the module runs."""
    if not (COLLECTION / "plugins/action" / f"{name}.py").exists():
        return ()
    return tuple(importlib.import_module(f"{PACKAGE}.action.{name}").CONTROLLER_ARGS)


def documentation(name: str) -> dict:
    """The module's sections, with the options of the collection's own doc fragments that its
    DOCUMENTATION extends merged in (as ansible-doc shows them)."""
    module = importlib.import_module(f"{PACKAGE}.modules.{name}")
    docs = {
        section: yaml.safe_load(getattr(module, section))
        for section in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }
    for fragment in docs["DOCUMENTATION"].get("extends_documentation_fragment") or []:
        if not fragment.startswith("sipwave.platform."):
            continue
        source = importlib.import_module(f"{PACKAGE}.doc_fragments.{fragment.split('.')[-1]}")
        options = yaml.safe_load(source.ModuleDocFragment.DOCUMENTATION)["options"]
        own = docs["DOCUMENTATION"].setdefault("options", {})
        assert not set(options) & set(own or {}), f"{name} documents {fragment} options again"
        docs["DOCUMENTATION"]["options"] = {**options, **(own or {})}
    return docs


def normalised(option: dict) -> dict:
    return {key: option.get(key, IMPLIED[key]) for key in COMPARED}


@pytest.mark.parametrize("name", MODULES)
def test_documentation_examples_and_return_are_yaml(name):
    docs = documentation(name)

    assert docs["DOCUMENTATION"]["module"] == name
    assert docs["DOCUMENTATION"]["short_description"]
    assert isinstance(docs["EXAMPLES"], list) and docs["EXAMPLES"]
    assert any(f"sipwave.platform.{name}" in task for task in docs["EXAMPLES"])
    assert isinstance(docs["RETURN"], dict)
    for value, returned in docs["RETURN"].items():
        assert {"description", "returned", "type"} <= set(returned), value


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_are_the_accepted_ones(name, monkeypatch):
    documented = documentation(name)["DOCUMENTATION"].get("options") or {}
    spec = argument_spec(name, monkeypatch)

    assert sorted(documented) == sorted([*spec, *controller_options(name)])


@pytest.mark.parametrize("name", MODULES)
def test_documented_types_requirements_and_defaults_match_the_spec(name, monkeypatch):
    documented = documentation(name)["DOCUMENTATION"].get("options") or {}
    spec = argument_spec(name, monkeypatch)

    mismatches = {
        option: {"documented": normalised(documented[option]), "spec": normalised(spec[option])}
        for option in spec
        if option in documented and normalised(documented[option]) != normalised(spec[option])
    }
    assert mismatches == {}


def test_every_module_is_checked():
    assert {"wave", "release", "kamailio_subscribers", "notify", "kamailio_schema"} <= set(MODULES)


DATABASE_OPTIONS = {"backend", "database", "db_host", "db_port", "db_name", "db_user",
                    "db_password"}  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_the_database_options_are_documented_once_in_the_fragment(name, monkeypatch):
    """A module that opens the proxy database (database_argument_spec) takes its options from
    the kamailio_db doc fragment instead of repeating them."""
    if not set(argument_spec(name, monkeypatch)) >= DATABASE_OPTIONS:
        pytest.skip("does not open the proxy database")
    module = importlib.import_module(f"{PACKAGE}.modules.{name}")
    own = yaml.safe_load(module.DOCUMENTATION).get("options") or {}
    assert not DATABASE_OPTIONS & set(own)
