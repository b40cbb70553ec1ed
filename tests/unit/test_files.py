"""module_utils/files.py: the one atomic write and the locked JSON update."""

import json
import multiprocessing
import os
import stat

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import files


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        files.atomic_write(str(tmp_path / "report.json"), "{}\n")
        files.atomic_write(str(tmp_path / "phone.cfg"), b"x", mode=0o640)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "report.json") == 0o600
    assert mode_of(tmp_path / "phone.cfg") == 0o640


def test_a_replaced_file_takes_the_new_mode_and_content(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    target.chmod(0o644)
    files.atomic_write(str(target), "new")
    assert target.read_text() == "new"
    assert mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "pending.json"
    target.write_text("old content")

    def broken_write(descriptor, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "write", broken_write)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write(str(target), "new content")
    monkeypatch.undo()
    assert target.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pending.json"]


def test_a_temporary_left_by_a_crash_is_replaced_by_the_next_write(tmp_path):
    (tmp_path / ".report.json.tmp").write_text("half")
    files.atomic_write(str(tmp_path / "report.json"), "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_remove_says_whether_there_was_a_file(tmp_path):
    target = tmp_path / "pending.json"
    target.write_text("x")
    assert files.remove(str(target)) is True
    assert files.remove(str(target)) is False


def _add_host(path: str, host: str, rounds: int) -> None:
    for index in range(rounds):
        files.locked_json_update(
            path, lambda doc, key=f"{host}-{index}": {**(doc or {}), key: True}
        )


def test_concurrent_updates_from_several_processes_all_land(tmp_path):
    path = str(tmp_path / "wave-run.json")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_host, args=(path, f"h{n}", 25)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    document = json.loads((tmp_path / "wave-run.json").read_text())
    assert len(document) == 4 * 25
    assert mode_of(path) == 0o600


def test_an_update_that_raises_leaves_the_document_untouched(tmp_path):
    path = tmp_path / "report.json"
    files.locked_json_update(str(path), lambda doc: {"hosts": ["a"]})

    def refuse(document):
        raise ValueError("bad section")

    with pytest.raises(ValueError, match="bad section"):
        files.locked_json_update(str(path), refuse)
    assert json.loads(path.read_text()) == {"hosts": ["a"]}


def test_a_missing_document_is_an_error_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.locked_json_update(str(tmp_path / "none.json"), dict, missing_ok=False)
