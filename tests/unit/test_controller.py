"""plugin_utils/controller.py: the export read once per playbook run, shared by the action
plugins' worker processes (each a child of the ansible-playbook process)."""

import hashlib
import marshal
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    ExportError,
    read_export,
)
from ansible_collections.sipwave.platform.plugins.plugin_utils import controller

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import make_sample_export  # tools/ is not a package

PLAN = plan_from_dict({"country_code": "48", "national_lengths": [9]})


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """The cache under tmp_path, and every real parse written to a file (shared by forks)."""
    monkeypatch.setenv("SIPWAVE_CONTROLLER_CACHE", str(tmp_path / "cache"))
    parses = tmp_path / "parses"
    parses.touch()
    real = controller.read_export

    def read_export(path, plan, data=None):
        with open(parses, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(path, plan, data=data)

    monkeypatch.setattr(controller, "read_export", read_export)
    return parses


def export_file(tmp_path, accounts=200, seed=1) -> str:
    path = tmp_path / "export.csv"
    path.write_bytes(make_sample_export.build(accounts, seed=seed, waves=["w1"], bad_rows=True))
    return str(path)


def _worker(path: str, results) -> None:
    export = controller.read_export_once(path, PLAN)
    results.put((len(export.accounts), len(export.bad_rows), tuple(sorted(export.accounts)[:3])))


def test_workers_of_one_run_parse_the_export_once(tmp_path, counted):
    path = export_file(tmp_path)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(path, results)) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    seen = {results.get(timeout=5) for _ in workers}
    assert len(counted.read_text().split()) == 1
    assert len(seen) == 1 and next(iter(seen))[0] > 0


def test_the_cached_export_equals_the_parsed_one(tmp_path, counted):
    """Accounts (in file order, devices included), bad rows and problems survive the cache."""
    path = export_file(tmp_path)
    parsed = controller.read_export_once(path, PLAN)
    cached = controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 1
    assert cached == parsed and list(cached.accounts) == list(parsed.accounts)
    assert any(a.devices for a in cached.accounts.values()) and cached.bad_rows
    assert type(next(iter(cached.accounts.values()))) is type(next(iter(parsed.accounts.values())))


def test_a_changed_export_is_parsed_again(tmp_path, counted):
    path = export_file(tmp_path, seed=1)
    first = controller.read_export_once(path, PLAN)
    export_file(tmp_path, seed=2)
    second = controller.read_export_once(path, PLAN)
    again = controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 2
    assert sorted(second.accounts) == sorted(again.accounts)
    assert first.summary()["rows"] == second.summary()["rows"]


def test_the_cache_is_private(tmp_path, counted):
    controller.read_export_once(export_file(tmp_path), PLAN)
    root = tmp_path / "cache"
    run = next(root.glob("run-*"))
    skeleton = next(root.glob("skeleton-*.marshal"))

    assert oct(root.stat().st_mode & 0o777) == oct(0o700)
    assert oct(run.stat().st_mode & 0o777) == oct(0o700)
    assert oct(skeleton.stat().st_mode & 0o777) == oct(0o600)


def new_run(tmp_path) -> None:
    """What the next playbook run finds: this run's directory gone, the skeletons kept."""
    for run in (tmp_path / "cache").glob("run-*"):
        shutil.rmtree(run)


def test_the_next_run_takes_the_parse_and_the_secrets_from_the_same_bytes(tmp_path, counted):
    path = export_file(tmp_path)
    parsed = controller.read_export_once(path, PLAN)
    new_run(tmp_path)
    again = controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 1
    assert again == parsed == read_export(path, PLAN)
    assert list(again.accounts) == list(parsed.accounts)
    assert any(a.password for a in again.accounts.values())
    assert any(a.ha1 for a in again.accounts.values())


def test_the_cache_holds_no_password_and_no_ha1(tmp_path, counted):
    path = export_file(tmp_path)
    export = controller.read_export_once(path, PLAN)
    cached = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())

    secrets = {s for a in export.accounts.values() for s in (a.password, a.ha1) if len(s) >= 8}
    assert secrets and not [s for s in secrets if s.encode() in cached]


def test_an_export_changed_between_runs_is_parsed_again(tmp_path, counted):
    path = export_file(tmp_path, seed=1)
    controller.read_export_once(path, PLAN)
    new_run(tmp_path)
    export_file(tmp_path, seed=2)
    second = controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 2
    assert second == read_export(path, PLAN)


def _skeleton(tmp_path) -> Path:
    return next((tmp_path / "cache").glob("skeleton-*.marshal"))


def _resealed(content: bytes, payload: bytes) -> bytes:
    """A skeleton with another payload and a digest that matches it (a forger's file)."""
    magic, path, key, _digest, _payload = content.split(b"\n", 4)
    digest = hashlib.sha256(payload).hexdigest().encode()
    return b"\n".join((magic, path, key, digest, payload))


def _tamper_truncated(content: bytes) -> bytes:
    return content[: len(content) // 2]


def _tamper_flipped(content: bytes) -> bytes:
    return content[:-10] + bytes([content[-10] ^ 1]) + content[-9:]


def _tamper_other_lines(content: bytes) -> bytes:
    """Digest right, but every account said to be on another line than its row."""
    payload = content.split(b"\n", 4)[4]
    path, rows, accounts, bad_rows = marshal.loads(payload)
    accounts = [(values[0] + 1, *values[1:]) for values in accounts]
    return _resealed(content, marshal.dumps((path, rows, accounts, bad_rows)))


def _tamper_not_marshal(content: bytes) -> bytes:
    return _resealed(content, b"\x00not marshal data")


@pytest.mark.parametrize(
    "tamper", [_tamper_truncated, _tamper_flipped, _tamper_other_lines, _tamper_not_marshal]
)
def test_a_corrupt_or_forged_skeleton_is_ignored(tmp_path, counted, tamper):
    path = export_file(tmp_path)
    controller.read_export_once(path, PLAN)
    skeleton = _skeleton(tmp_path)
    skeleton.write_bytes(tamper(skeleton.read_bytes()))
    new_run(tmp_path)
    again = controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 2
    assert again == read_export(path, PLAN)


def test_a_skeleton_others_may_write_or_a_link_is_ignored(tmp_path, counted):
    path = export_file(tmp_path)
    controller.read_export_once(path, PLAN)
    skeleton = _skeleton(tmp_path)
    skeleton.chmod(0o620)
    new_run(tmp_path)
    controller.read_export_once(path, PLAN)
    assert len(counted.read_text().split()) == 2

    elsewhere = tmp_path / "elsewhere.marshal"
    skeleton.rename(elsewhere)
    skeleton.symlink_to(elsewhere)
    new_run(tmp_path)
    controller.read_export_once(path, PLAN)
    assert len(counted.read_text().split()) == 3


def test_skeletons_of_exports_gone_are_removed(tmp_path, counted):
    gone = tmp_path / "gone.csv"
    gone.write_bytes(Path(export_file(tmp_path)).read_bytes())
    controller.read_export_once(str(gone), PLAN)
    gone.unlink()
    path = export_file(tmp_path, seed=3)
    controller.read_export_once(path, PLAN)

    assert [p.name for p in (tmp_path / "cache").glob("skeleton-*")] == [
        controller._skeleton_path(tmp_path / "cache", path).name
    ]


def test_the_same_bytes_under_another_name_are_parsed_for_that_name(tmp_path, counted):
    """Problems quote the file's name: a copy's skeleton is its own."""
    path = export_file(tmp_path)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(Path(path).read_bytes())
    first = controller.read_export_once(path, PLAN)
    second = controller.read_export_once(str(copy), PLAN)

    assert len(counted.read_text().split()) == 2
    assert str(first.problems[0]).startswith(path) and str(second.problems[0]).startswith(str(copy))


def test_a_cache_directory_others_can_enter_is_not_used(tmp_path, counted):
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    path = export_file(tmp_path)
    controller.read_export_once(path, PLAN)
    controller.read_export_once(path, PLAN)

    assert len(counted.read_text().split()) == 2
    assert list(root.iterdir()) == []


def test_runs_whose_playbook_ended_are_removed(tmp_path, counted):
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    finished = root / "run-999999999-1"
    finished.mkdir(mode=0o700)
    (finished / "export-x.marshal").write_bytes(b"old")

    controller.read_export_once(export_file(tmp_path), PLAN)

    assert not finished.exists()
    assert [p.name.split("-")[1] for p in root.glob("run-*")] == [str(os.getppid())]


def test_a_missing_export_is_the_same_error_as_without_cache(tmp_path, counted):
    with pytest.raises(ExportError, match="cannot read the export"):
        controller.read_export_once(str(tmp_path / "missing.csv"), PLAN)
