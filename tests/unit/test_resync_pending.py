"""Phones owed a check-sync NOTIFY: recorded before their files change, kept across an
interrupted run, forgotten only once every proxy settled them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import device_token
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    DeviceConfig,
    Line,
    Renderer,
)
from ansible_collections.sipwave.platform.plugins.module_utils.resync_pending import (
    OwedResync,
    PendingError,
    load_pending,
    save_pending,
    settled_macs,
    with_owed,
    without,
)
from module_runner import run_module_file
from test_provisioning import templates

MODULES = Path(__file__).resolve().parents[2] / (
    "collections/ansible_collections/sipwave/platform/plugins/modules"
)
SECRET = "unit-site-secret"
MAC_A, MAC_B = "0015651a2b3c", "0015651a2b3d"
OWED_A = OwedResync(MAC_A, "yealink", ("1001@ip.tanifon.pl",))
OWED_B = OwedResync(MAC_B, "snom", ("tnf1002@sip.sipwave.test", "1002@ip.tanifon.pl"))


# -- the pending file ---------------------------------------------------------------------------


def test_a_missing_file_owes_nothing(tmp_path):
    assert load_pending(str(tmp_path / "pending.json")) == {}


def test_a_saved_set_reads_back_the_same_private_and_without_a_temporary_file(tmp_path):
    path = tmp_path / "pending.json"
    save_pending(str(path), {MAC_B: OWED_B, MAC_A: OWED_A})
    assert load_pending(str(path)) == {MAC_A: OWED_A, MAC_B: OWED_B}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["pending.json"]


def test_saving_the_same_set_twice_writes_the_same_bytes(tmp_path):
    path = tmp_path / "pending.json"
    save_pending(str(path), {MAC_A: OWED_A, MAC_B: OWED_B})
    first = path.read_bytes()
    save_pending(str(path), {MAC_B: OWED_B, MAC_A: OWED_A})
    assert path.read_bytes() == first


def test_an_empty_set_removes_the_file(tmp_path):
    path = tmp_path / "pending.json"
    save_pending(str(path), {MAC_A: OWED_A})
    save_pending(str(path), {})
    assert not path.exists()
    save_pending(str(path), {})  # and nothing to remove is fine


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"version": 1,\n "devices": [\n', r"pending\.json:3: not JSON"),
        ('{"version": 7, "devices": []}', "not a pending re-sync file of version 1"),
        ('{"version": 1, "devices": {}}', "'devices' is not a list"),
        ('{"version": 1, "devices": [{"vendor": "snom"}]}', "entry 1 is not an object with a mac"),
        ('{"version": 1, "devices": [{"mac": "x", "identities": "a@b"}]}', r"entry 1 \(x\)"),
    ],
)
def test_a_damaged_file_is_refused_naming_the_file_and_the_reason(tmp_path, content, reason):
    path = tmp_path / "pending.json"
    path.write_text(content)
    with pytest.raises(PendingError, match=reason):
        load_pending(str(path))


def test_a_phone_owed_again_keeps_one_entry_with_its_newer_identities():
    newer = OwedResync(MAC_A, "yealink", ("tnf1001@sip.sipwave.test", "1001@ip.tanifon.pl"))
    merged = with_owed({MAC_A: OWED_A, MAC_B: OWED_B}, [newer])
    assert merged == {MAC_A: newer, MAC_B: OWED_B}
    assert without(merged, [MAC_A, "not-owed"]) == {MAC_B: OWED_B}


# -- which phones were told ---------------------------------------------------------------------


def told(*devices: tuple[str, bool]) -> dict:
    return {"changed": True, "devices": [{"mac": m, "settled": s} for m, s in devices]}


def test_a_phone_is_forgotten_only_when_every_proxy_settled_it():
    results = [told((MAC_A, True), (MAC_B, True)), told((MAC_A, True), (MAC_B, False))]
    assert settled_macs(results) == {MAC_A}


@pytest.mark.parametrize(
    "second_proxy",
    [{}, {"failed": True, "msg": "ul.lookup failed"}, {"skipped": True, "changed": False}],
    ids=["no result", "failed", "skipped"],
)
def test_a_proxy_without_a_result_settles_nothing(second_proxy):
    assert settled_macs([told((MAC_A, True)), second_proxy]) == set()


def test_no_proxy_settles_nothing():
    assert settled_macs([]) == set()


# -- the renderer records before it overwrites --------------------------------------------------


def device(mac: str, password: str) -> DeviceConfig:
    line = Line("1001", "phase1", "1001", "ip.tanifon.pl", "Anna", password)
    return DeviceConfig(mac, "yealink", "T46U", device_token(SECRET, mac), line)


def config_path(tmp_path: Path, mac: str) -> Path:
    return tmp_path / "out" / device_token(SECRET, mac) / f"{mac}.cfg"


def render(tmp_path: Path, devices, before_updates=None, check_mode: bool = False):
    renderer = Renderer(templates(), {"provisioning_url": "https://prov.test"},
                        str(tmp_path / "out"))  # fmt: skip
    return renderer.run(devices, check_mode, before_updates)


def test_updated_devices_are_recorded_before_any_of_their_files_changes(tmp_path):
    render(tmp_path, [device(MAC_A, "pw-old"), device(MAC_B, "pw-old")])
    seen = []

    def record(macs):
        seen.append((macs, "pw-old" in config_path(tmp_path, MAC_A).read_text()))

    render(tmp_path, [device(MAC_A, "pw-new"), device(MAC_B, "pw-old")], record)
    assert seen == [([MAC_A], True)]  # called once, while the old file was still there
    assert "pw-new" in config_path(tmp_path, MAC_A).read_text()


def test_a_run_stopped_while_recording_changes_no_file(tmp_path):
    render(tmp_path, [device(MAC_A, "pw-old")])

    def killed(_macs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(tmp_path, [device(MAC_A, "pw-new")], killed)
    assert "pw-old" in config_path(tmp_path, MAC_A).read_text()


@pytest.mark.parametrize("check_mode", [False, True], ids=["new devices", "check mode"])
def test_nothing_is_recorded_for_new_devices_or_in_check_mode(tmp_path, check_mode):
    if check_mode:
        render(tmp_path, [device(MAC_A, "pw-old")])
    seen = []
    render(tmp_path, [device(MAC_A, "pw-new")], seen.append, check_mode=check_mode)
    assert seen == []


# -- the modules as Ansible runs them: a run interrupted before its NOTIFYs ---------------------


def configs_args(tmp_path: Path, password: str) -> dict:
    devices = tmp_path / "devices.json"
    devices.write_text(json.dumps([{
        "mac": MAC_A, "vendor": "yealink", "model": "T46U", "token": device_token(SECRET, MAC_A),
        "line": ["1001", "phase1", "1001", "ip.tanifon.pl", "Anna", password],
        "identities": ["1001@ip.tanifon.pl"],
    }]))  # fmt: skip
    return {
        "devices_file": str(devices),
        "templates": templates(),
        "site": {"provisioning_url": "https://prov.test"},
        "output_dir": str(tmp_path / "out"),
        "pending_file": str(tmp_path / "pending.json"),
    }


def run_configs(tmp_path: Path, password: str, check: bool = False) -> dict:
    run = run_module_file(MODULES / "provisioning_configs.py", tmp_path,
                          configs_args(tmp_path, password), check=check)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def run_settle(tmp_path: Path, results: list[dict], check: bool = False) -> dict:
    args = {"path": str(tmp_path / "pending.json"), "check_sync_results": results}
    run = run_module_file(MODULES / "resync_pending.py", tmp_path, args, check=check)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


OWED = [{"mac": MAC_A, "vendor": "yealink", "identities": ["1001@ip.tanifon.pl"]}]


def test_a_rerun_after_an_interrupted_run_still_returns_the_owed_phone(tmp_path):
    assert run_configs(tmp_path, "pw-old")["resync"] == []  # created: nothing to re-sync
    changed = run_configs(tmp_path, "pw-new")
    assert changed["changed"] is True
    assert changed["resync"] == OWED
    # the run stops here (killed, or check_sync failed): no NOTIFY, nothing settled
    rerun = run_configs(tmp_path, "pw-new")
    assert rerun["changed"] is False
    assert rerun["resync"] == OWED


def test_check_mode_returns_what_would_be_owed_and_records_nothing(tmp_path):
    run_configs(tmp_path, "pw-old")
    assert run_configs(tmp_path, "pw-new", check=True)["resync"] == OWED
    assert not (tmp_path / "pending.json").exists()


def test_an_unsettled_phone_stays_owed_and_a_settled_one_goes_once(tmp_path):
    run_configs(tmp_path, "pw-old")
    run_configs(tmp_path, "pw-new")
    kept = run_settle(tmp_path, [told((MAC_A, False))])
    assert (kept["changed"], kept["owed"]) == (False, [MAC_A])
    assert run_settle(tmp_path, [told((MAC_A, True))], check=True)["settled"] == [MAC_A]
    assert (tmp_path / "pending.json").exists()  # check mode wrote nothing
    settled = run_settle(tmp_path, [told((MAC_A, True))])
    assert (settled["changed"], settled["settled"], settled["owed"]) == (True, [MAC_A], [])
    assert run_configs(tmp_path, "pw-new")["resync"] == []
    again = run_settle(tmp_path, [told((MAC_A, True))])
    assert again["changed"] is False


def test_a_damaged_pending_file_fails_the_module_naming_it(tmp_path):
    (tmp_path / "pending.json").write_text("{broken")
    run = run_module_file(MODULES / "provisioning_configs.py", tmp_path,
                          configs_args(tmp_path, "pw-old"))  # fmt: skip
    result = json.loads(run.stdout)
    assert result["failed"] is True
    assert "pending.json:1: not JSON" in result["msg"]
