"""Import a KEMI router script the way Kamailio's app_python3s does, outside Kamailio.

``kamailio -c`` checks kamailio.cfg without running app_python3s's mod_init, so it never
imports the router: a router that compiles but fails at import (a missing module, a name
error at module level, a settings.json that Router(...) rejects) passes it, and the next
reload makes Kamailio exit. This check closes that gap before a release goes live.

Run it with the python3 Kamailio embeds, without writing byte-code into the checked tree::

    python3 -B check_kemi_router.py /etc/kamailio/sipwave/staging/router/sipwave_kemi.py

Exit 0 when the script imports and its ``ksr_request_route`` can be called without
arguments; otherwise exit 1, the traceback on stderr and, last, one line naming the file,
the line and the reason.
"""

import importlib
import inspect
import sys
import traceback
import types
from pathlib import Path

REQUEST_ROUTE = "ksr_request_route"


class KsrStandIn:
    """Any ``KSR.<module>.<function>``: routers bind them at import (``_get = KSR.pv.get``).

    Nothing is called for real at import time; a call returns None, like a KEMI getter
    that finds nothing.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, name: str) -> "KsrStandIn":
        if name.startswith("__"):  # keep the import system and copy/pickle probes honest
            raise AttributeError(name)
        return KsrStandIn(f"{self._name}.{name}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"


def ksr_stand_in() -> types.ModuleType:
    """A module named KSR whose every attribute is a KsrStandIn (PEP 562 __getattr__)."""
    module = types.ModuleType("KSR", "Stand-in for the KSR module Kamailio provides.")

    def attribute(name: str) -> KsrStandIn:
        if name.startswith("__"):
            raise AttributeError(name)
        return KsrStandIn(f"KSR.{name}")

    module.__getattr__ = attribute  # type: ignore[method-assign]
    return module


def import_router(script: Path) -> types.ModuleType:
    """Import ``script`` as app_python3s does: its directory first on sys.path, by name."""
    sys.modules["KSR"] = ksr_stand_in()
    # python3 put this checker's own directory there; Kamailio puts the script's.
    sys.path[0] = str(script.parent)
    return importlib.import_module(script.stem)


def router_frames(exc: BaseException, router_dir: Path) -> traceback.StackSummary:
    """The traceback from the router's first frame on, without the import machinery."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [Path(frame.filename).is_relative_to(router_dir) for frame in frames]
    first = inside.index(True) if True in inside else 0
    kept = [frame for frame in frames[first:] if not frame.filename.startswith("<frozen ")]
    return traceback.StackSummary.from_list(kept)


def where(exc: BaseException, frames: traceback.StackSummary, router_dir: Path) -> str:
    """``file line N`` of the failure, and the router's own frame when the last is not."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename} line {exc.lineno}"
    if not frames:
        return "(no traceback)"
    last = frames[-1]
    text = f"{last.filename} line {last.lineno}"
    own = [frame for frame in frames if Path(frame.filename).is_relative_to(router_dir)]
    if own and own[-1] is not last:
        text += f" (from {own[-1].filename} line {own[-1].lineno})"
    return text


def request_route_problem(module: types.ModuleType) -> str | None:
    """Why Kamailio could not call the module's ksr_request_route(), or None."""
    route = getattr(module, REQUEST_ROUTE, None)
    if route is None:
        return f"{module.__file__}: defines no {REQUEST_ROUTE}"
    if not callable(route):
        return f"{module.__file__}: {REQUEST_ROUTE} is not callable"
    try:
        inspect.signature(route).bind()
    except TypeError as exc:
        code = getattr(route, "__code__", None)
        place = f"{code.co_filename} line {code.co_firstlineno}" if code else module.__file__
        return f"{place}: {REQUEST_ROUTE} cannot be called without arguments: {exc}"
    except ValueError:  # no signature to inspect (a builtin): nothing more can be told
        pass
    return None


def check(script: Path) -> str | None:
    """None when the router is fit to load, else the one-line reason."""
    if not script.is_file():
        return f"{script}: no such file"
    try:
        module = import_router(script)
    except (Exception, SystemExit) as exc:
        frames = router_frames(exc, script.parent)
        print("Traceback (router frames):", file=sys.stderr)
        print("".join(frames.format()), end="", file=sys.stderr)
        reason = f"{type(exc).__name__}: {exc}"
        return f"{where(exc, frames, script.parent)}: importing {script.name} failed: {reason}"
    return request_route_problem(module)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} ROUTER_SCRIPT.py", file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True  # also when run without -B
    problem = check(Path(argv[1]).absolute())
    if problem is not None:
        print(f"KEMI router check failed: {problem}", file=sys.stderr)
        return 1
    print(f"KEMI router check passed: {argv[1]} imports and defines {REQUEST_ROUTE}()")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
