"""What a running nginx has loaded: its serving workers (a reload it took starts new ones)
and the error log's lines about a configuration it refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.nginx_state import (
    Generation,
    failures_since,
    log_size,
    restart_would_fail,
    worker_pids,
)

MASTER = 100


def process(proc: Path, pid: int, parent: int, title: str, comm: str = "nginx") -> None:
    directory = proc / str(pid)
    directory.mkdir(parents=True)
    (directory / "stat").write_text(f"{pid} ({comm}) S {parent} {pid} {pid} 0 -1\n")
    (directory / "cmdline").write_bytes(title.encode() + b"\0" * 20)


@pytest.fixture
def proc(tmp_path) -> Path:
    root = tmp_path / "proc"
    process(root, MASTER, 1, "nginx: master process /usr/sbin/nginx -g daemon on;")
    process(root, 101, MASTER, "nginx: worker process")
    process(root, 102, MASTER, "nginx: worker process")
    process(root, 300, 1, "nginx: worker process")  # another master's
    (root / "self").mkdir()
    return root


def test_the_workers_are_the_masters_serving_children(proc):
    assert worker_pids(MASTER, str(proc)) == {101, 102}


def test_workers_shutting_down_after_a_reload_are_not_counted(proc):
    (proc / "101" / "cmdline").write_bytes(b"nginx: worker process is shutting down\0")
    assert worker_pids(MASTER, str(proc)) == {102}


def test_a_process_name_with_parentheses_does_not_confuse_the_parent(proc):
    process(proc, 103, MASTER, "nginx: worker process", comm="ng) S 1 (x")
    assert 103 in worker_pids(MASTER, str(proc))


@pytest.mark.parametrize(
    ("later", "replaced"),
    [
        (Generation(MASTER, frozenset({101, 102})), False),  # a refused reload: same workers
        (Generation(MASTER, frozenset({103, 104})), True),  # a reload taken
        (Generation(MASTER, frozenset({102, 103})), True),  # taken, one old worker finishing
        (Generation(200, frozenset({201})), True),  # a restart
        (Generation(200, frozenset()), False),  # a new master not serving yet
        (Generation(None, frozenset()), False),  # stopped
    ],
)
def test_a_new_generation_is_new_workers_or_a_new_master(later, replaced):
    before = Generation(MASTER, frozenset({101, 102}))
    assert before.replaced_by(later) is replaced


def test_a_stopped_nginx_is_replaced_by_a_started_one():
    assert Generation(None, frozenset()).replaced_by(Generation(200, frozenset({201})))


REFUSED = (  # as nginx 1.30 logs a reload whose new listening address is taken
    "2026/11/30 15:32:50 [emerg] 2072#2072: bind() to 127.0.22.51:8088 failed "
    "(98: Address already in use)\n"
)


def test_only_failure_lines_written_after_the_offset_are_returned(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("2026/11/30 15:00:00 [emerg] 1#1: an older failure\n")
    offset = log_size(str(log))
    with log.open("a") as handle:
        handle.write("2026/11/30 15:40:01 [warn] 100#100: a warning\n" + REFUSED)
    assert failures_since(str(log), offset) == [REFUSED.strip()]


def test_a_rotated_log_is_read_from_its_start(tmp_path):
    log = tmp_path / "error.log"
    log.write_text(REFUSED)
    assert failures_since(str(log), 10_000) == [REFUSED.strip()]


def test_token_shaped_strings_are_masked_and_a_missing_log_is_empty(tmp_path):
    log = tmp_path / "error.log"
    log.write_text(f"[alert] 1#1: open() /p/{'ab' * 16}/x.cfg failed\n")
    assert failures_since(str(log), 0) == ["[alert] 1#1: open() /p/-/x.cfg failed"]
    assert failures_since(str(tmp_path / "missing.log"), 0) == []
    assert log_size(str(tmp_path / "missing.log")) == 0


def test_workers_started_after_a_change_have_loaded_it(proc, monkeypatch):
    monkeypatch.setattr(os, "sysconf", lambda _name: 100)
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1764500000\nprocesses 9\n")
    for pid, ticks in ((101, 50_000), (102, 60_000)):  # 500 s and 600 s after boot
        fields = f"S {MASTER} 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {ticks} 1 1"
        (proc / str(pid) / "stat").write_text(f"{pid} (nginx) {fields}\n")
    generation = Generation(MASTER, frozenset({101, 102}))
    assert generation.loaded_since(1764500000 + 499, str(proc))
    assert not generation.loaded_since(1764500000 + 550, str(proc))  # 101 is older
    assert not Generation(MASTER, frozenset()).loaded_since(0, str(proc))


@pytest.mark.parametrize(
    ("line", "would_fail"),
    [
        ("[emerg] 1#1: bind() to 127.0.22.51:8088 failed (98: Address already in use)", True),
        ('[emerg] 1#1: limit_req "z" uses the "$a" key while previously it used the "$b" key',
         False),
    ],
)  # fmt: skip
def test_a_refusal_over_a_busy_address_is_not_restarted(line, would_fail):
    assert restart_would_fail([line]) is would_fail
