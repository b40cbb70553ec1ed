"""The porting modules as Ansible runs them: the database they open, the messages of a
missing one, and results that never carry a secret code or its hash."""

import json
from pathlib import Path

import yaml
from module_runner import COLLECTIONS, run_module_file
from wave_helpers import PROJECT, account, create_database, run

MODULES = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules"
REGIME = yaml.safe_load((PROJECT / "playbooks/files/porting_regimes/it.yml").read_text())
ANNA = account("481234201", ("+48221234201",))


def module(name: str, tmp_path: Path, args: dict) -> dict:
    return json.loads(run_module_file(MODULES / f"{name}.py", tmp_path, args).stdout)


def test_each_porting_module_names_the_role_when_its_database_is_missing(tmp_path):
    missing = str(tmp_path / "none.sqlite")
    for name, args in (("port_request", {"operation": "list"}),
                       ("port_donor", {"operation": "answer", "operator": "SWV",
                                       "directory": str(tmp_path)}),
                       ("cutover", {"operation": "check", "logins": ["x"]})):  # fmt: skip
        result = module(name, tmp_path, {**args, "database": missing})
        assert result["failed"] and "does not exist: deploy the kamailio role" in result["msg"]


def test_a_request_taken_by_the_module_comes_back_without_its_secret(tmp_path):
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, [ANNA])
    secret = "S3CRETCODE9"
    taken = module("port_request", tmp_path, {
        "database": str(database), "operation": "submit", "regime": REGIME,
        "requests": [{"ref": "P1", "login": ANNA.login, "migration_code": "TNF 221234201 001 K",
                      "secret_code": secret, "requested_date": "2026-12-20"}]})  # fmt: skip
    assert [e["to"] for e in taken["events"]] == ["requested", "validated"]
    listed = module("port_request", tmp_path, {"database": str(database), "operation": "list"})
    text = json.dumps([taken, listed])
    assert secret not in text and "scrypt$" not in text
    assert [e["to"] for e in listed["requests"][0]["events"]] == ["requested", "validated"]
    blocked = module("cutover", tmp_path, {"database": str(database), "operation": "check",
                                           "logins": [ANNA.login]})  # fmt: skip
    assert blocked["blockers"][ANNA.login] == ["+48221234201 is porting, not ported"]
