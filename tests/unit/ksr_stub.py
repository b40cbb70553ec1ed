"""A KSR module for unit tests, built from the KEMI API list captured from the lab's Kamailio.

Only functions that the real Kamailio exports exist on the stub, each taking exactly the
real number of parameters; calling anything else fails the test. Every call is recorded.
Return values come from ``returns`` (a value or a callable taking the call's arguments);
pseudo-variables for ``KSR.pv`` come from ``pvars``.
"""

import json
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

API_FILE = Path(__file__).with_name("ksr_api.json")
# In a pv format string: $sht(table=>$key), a header list such as $(hdr(Contact)[*]), a
# variable with a name such as $hdrc(Authorization), or a plain $name. Each but the first is
# looked up in ``pvars`` as written.
PV_REFERENCE = re.compile(
    r"\$sht\((?P<table>\w+)=>(?P<key>\$\w+)\)"
    r"|(?P<pv>\$\(\w+\([^()]*\)\[\*\]\)|\$\w+(?:\([^()$]*\))?)"
)
PV_NULL = "<null>"
DEFAULT_BY_RET = {"int": 1, "bool": 1, "none": None, "str": None, "xval": None, "long": 1}


class KsrStub(types.ModuleType):
    def __init__(self, api: list[dict]):
        super().__init__("KSR")
        self.calls: list[tuple[str, tuple]] = []
        self.returns: dict[str, Any] = {}
        self.pvars: dict[str, Any] = {}
        self.htables: dict[str, dict[str, Any]] = {}
        modules: dict[str, types.SimpleNamespace] = {}
        for entry in api:
            target = (
                self
                if not entry["module"]
                else modules.setdefault(entry["module"], types.SimpleNamespace())
            )
            setattr(target, entry["name"], self._function(entry))
        for name, namespace in modules.items():
            setattr(self, name, namespace)
        self._wire_pv()
        self._wire_htable()

    def _function(self, entry: dict) -> Callable:
        qualified = f"{entry['module']}.{entry['name']}" if entry["module"] else entry["name"]
        arity = len(entry["params"])
        default = DEFAULT_BY_RET.get(entry["ret"])

        def call(*args):
            if len(args) != arity:
                raise TypeError(f"KSR.{qualified} takes {arity} arguments, got {len(args)}")
            self.calls.append((qualified, args))
            result = self.returns.get(qualified, default)
            return result(*args) if callable(result) else result

        call.__name__ = entry["name"]
        return call

    def _wire_pv(self) -> None:
        def get(name):
            self.calls.append(("pv.get", (name,)))
            if name.startswith("$_s(") and name.endswith(")"):
                return self._format(name[4:-1])
            return self.pvars.get(name)

        def sets(name, value):
            self.calls.append(("pv.sets", (name, value)))
            self.pvars[name] = value

        self._replace("pv", "get", get)
        self._replace("pv", "sets", sets)

    def _format(self, text: str) -> str:
        """What pv's ``$_s(format)`` gives: variables and ``$sht(table=>$var)`` substituted,
        an absent value printed as ``<null>``, everything else kept as written."""

        def value(match: re.Match) -> str:
            if match["table"]:
                found = self.htables.get(match["table"], {}).get(self.pvars.get(match["key"]))
            else:
                found = self.pvars.get(match["pv"])
            return PV_NULL if found is None else str(found)

        return PV_REFERENCE.sub(value, text)

    def _wire_htable(self) -> None:
        def table(name):
            return self.htables.setdefault(name, {})

        def sht_get(name, key):
            self.calls.append(("htable.sht_get", (name, key)))
            return table(name).get(key)

        def sht_seti(name, key, value):
            self.calls.append(("htable.sht_seti", (name, key, value)))
            table(name)[key] = value
            return 1

        def sht_inc(name, key):
            self.calls.append(("htable.sht_inc", (name, key)))
            table(name)[key] = table(name).get(key, 0) + 1
            return table(name)[key]

        for name, function in (("sht_get", sht_get), ("sht_seti", sht_seti), ("sht_inc", sht_inc)):
            self._replace("htable", name, function)

    def _replace(self, module: str, name: str, function: Callable) -> None:
        namespace = getattr(self, module)
        if not hasattr(namespace, name):
            raise AttributeError(f"the captured API has no KSR.{module}.{name}")
        setattr(namespace, name, function)

    def called(self, qualified: str) -> list[tuple]:
        return [args for name, args in self.calls if name == qualified]

    def replies(self) -> list[tuple]:
        return self.called("sl.sl_send_reply")


def load_api() -> list[dict]:
    return json.loads(API_FILE.read_text())
