"""tools/scenario_failures.py: a scenario log's failing tests, unfolded from Molecule's frame."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "scenario_failures", ROOT / "tools" / "scenario_failures.py"
)
scenario_failures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario_failures)

FRAME = "  \x1b[2m│\x1b[0m "
# As Molecule prints pytest's summary: folded at about 76 characters, inside its frame.
LOG = "\n".join(
    FRAME + line
    for line in [
        "tests/test_a.py::test_one PASSED [ 50%]",
        "=========================== short test summary info",
        "  ============================",
        "FAILED",
        "  tests/test_robustness.py::test_the_previous_configuration_keeps_serving_af",
        "  ter_the_refusal",
        "FAILED tests/test_robustness.py::test_the_defaults_come_back -",
        "  AssertionError: 8080 listens",
        "ERROR tests/test_restore.py::test_x",
        "FAILED - RETRYING: [localhost]: Wait for instance(s) creation to complete",
        "================== 2 failed, 83 passed in 1222.33s (0:20:22)",
    ]
)


def test_folded_test_ids_are_joined_and_retries_are_not_failures():
    assert scenario_failures.failures(LOG) == [
        "FAILED tests/test_robustness.py::test_the_previous_configuration_keeps_serving_after"
        "_the_refusal",
        "FAILED tests/test_robustness.py::test_the_defaults_come_back"
        " - AssertionError: 8080 listens",
        "ERROR tests/test_restore.py::test_x",
    ]


def test_a_passing_log_names_nothing():
    assert scenario_failures.failures(FRAME + "===== 180 passed in 317.81s =====") == []
