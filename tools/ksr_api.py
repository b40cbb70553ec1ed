#!/usr/bin/env python3
"""Capture the KEMI API of a running Kamailio, for the KSR stub of the unit tests.

Reads the output of ``kamcmd app_python3s.api_list`` (stdin or --from-container NAME) and
writes JSON: a sorted list of {"module", "name", "params", "ret"}. The unit tests build their
KSR stub from that file, so the router is tested against the functions the real Kamailio of
the lab exports, not against guessed ones.
"""

import argparse
import json
import re
import subprocess
import sys

FUNC_BLOCK = re.compile(r"func:\s*\{(?P<body>.*?)\}", re.S)
FIELD = re.compile(r"^\s*(ret|module|name|params):[ \t]*(.*?)\s*$", re.M)


def parse_api_list(text: str) -> list[dict]:
    functions = []
    for block in FUNC_BLOCK.finditer(text):
        fields = dict(FIELD.findall(block.group("body")))
        params = [p.strip() for p in fields.get("params", "none").split(",") if p.strip()]
        functions.append(
            {
                "module": fields.get("module", ""),
                "name": fields["name"],
                "params": [] if params == ["none"] else params,
                "ret": fields.get("ret", "none"),
            }
        )
    if not functions:
        raise ValueError("no 'func: {...}' blocks found: is this the output of api_list?")
    return sorted(functions, key=lambda f: (f["module"], f["name"], len(f["params"])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-container", metavar="NAME", help="podman container to ask")
    parser.add_argument("--socket", default="unix:/run/kamailio/kamailio_ctl")
    parser.add_argument("--output", "-o", default="-")
    args = parser.parse_args()
    if args.from_container:
        text = subprocess.run(
            [
                "podman",
                "exec",
                args.from_container,
                "kamcmd",
                "-s",
                args.socket,
                "app_python3s.api_list",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    else:
        text = sys.stdin.read()
    rendered = json.dumps(parse_api_list(text), indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(rendered)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
