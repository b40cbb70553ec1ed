#!/bin/bash
# Run one Molecule scenario under its lock, log to .cache/molecule/<scenario>.log and, when it
# fails, print the failing tests and the end of the log. Used by `make molecule`; expects the
# environment of lab/env.sh and the venv on PATH.
set -u -o pipefail
s=$1
log=.cache/molecule/$s.log
mkdir -p .cache/molecule
failed=.cache/molecule/$s.failed
rm -f "$failed"
start=$(date +%s)
if flock "/tmp/sipwave-molecule-$s.lock" bash -c '
    # Stale containers of this scenario: the platform names of its molecule.yml, matched
    # exactly (a name prefix would also catch another scenario whose name starts the same).
    for name in $(sed -n "s/^  - name: \(sipwave-molecule-[A-Za-z0-9_.-]*\)\$/\1/p" "molecule/$1/molecule.yml"); do
      ids=$(podman ps -aq --filter "label=io.sipwave.lab=molecule" --filter "name=^$name\$")
      if [ -n "$ids" ]; then podman rm -f $ids >/dev/null; fi
    done
    exec molecule test -s "$1"' _ "$s" >"$log" 2>&1; then
  echo "molecule $s: passed in $(( $(date +%s) - start )) s"
  exit 0
fi
echo "molecule $s: FAILED after $(( $(date +%s) - start )) s"
# Kept for the summary `make molecule` prints last (a CI page shows the end of the output).
{ echo "molecule $s: FAILED"; python3 tools/scenario_failures.py "$log"; } > "$failed"
echo "--- $s: failing tests and fatal tasks ---"
sed -n '/= FAILURES =/,/short test summary/p' "$log" | tail -n 200
grep -E '^(fatal|failed):|ERROR' "$log" | tail -n 20
echo "--- $s: end of log ---"
tail -n 60 "$log"
exit 1
