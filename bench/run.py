"""`make bench`: every benchmark in turn, or only those named (`make bench BENCH="register"`).

Each benchmark is a module in this directory with a ``main() -> int`` that prints its figures
as ratios against a baseline measured in the same run and writes them under bench/results/.
"""

import importlib
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# In the order they run; the name is the module's file name.
BENCHMARKS = {
    "register": "REGISTER with digest auth: Python KEMI router vs native kamailio.cfg",
    "call_routing": "calls to a carrier: Python KEMI router vs native kamailio.cfg",
    "migration_wave": "100,000 accounts in one wave module call vs a per-account task loop",
    "provisioning": "100,000 devices rendered in one module call; nginx config requests/s",
    "check_sync": "check-sync of 10,000 registered phones, 1,000 of them gone, in one deadline",
}


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(BENCH))
    outcomes = {}
    for name in names or list(BENCHMARKS):
        print(f"\n=== {name}: {BENCHMARKS[name]}", flush=True)
        started = time.monotonic()
        outcomes[name] = importlib.import_module(name).main()
        print(f"=== {name}: exit {outcomes[name]} after {time.monotonic() - started:.0f} s")
    failed = [name for name, code in outcomes.items() if code != 0]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
