"""Run a collection module file the way Ansible runs it on a target host."""

import json
import os
import subprocess
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


def run_module_file(
    module: Path, tmp_path: Path, args: dict, *, check: bool = False, diff: bool = False
) -> subprocess.CompletedProcess:
    args_file = tmp_path / "args.json"
    module_args = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    return subprocess.run(
        [sys.executable, str(module), str(args_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(COLLECTIONS)},
        check=False,
    )
