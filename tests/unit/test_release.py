"""sipwave.platform.release: validated, versioned configuration releases."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import release
from module_runner import run_module_file

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
MODULE = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules/release.py"

CONFIG = {
    "kamailio.cfg": "listen=udp:127.0.0.1:5060\n",
    "router/routing.py": "def ksr_request_route(msg):\n    return 1\n",
}


def write_tree(directory: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


def tree(directory: Path) -> dict[str, str]:
    """Relative path -> content (or link target) of everything under ``directory``."""
    return {
        str(path.relative_to(directory)): (
            f"-> {os.readlink(path)}" if path.is_symlink() else path.read_text()
        )
        for path in sorted(directory.rglob("*"))
        if path.is_symlink() or path.is_file()
    }


def pointer(root: Path, name: str) -> str | None:
    path = root / name
    return os.readlink(path) if path.is_symlink() else None


def deploy(staging: Path, root: Path, files: dict[str, str], **options) -> release.Outcome:
    """Render ``files`` as the whole staging directory and release it."""
    if staging.exists():
        shutil.rmtree(staging)
    write_tree(staging, files)
    return release.present(str(staging), str(root), **options)


def run_module(tmp_path: Path, args: dict, *, check: bool = False, diff: bool = False) -> dict:
    """Run the module file the way Ansible runs it on a target and return its result."""
    completed = run_module_file(MODULE, tmp_path, args, check=check, diff=diff)
    return json.loads(completed.stdout)


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def test_release_id_is_the_same_for_identical_content(tmp_path):
    first = write_tree(tmp_path / "a", CONFIG)
    second = write_tree(tmp_path / "b", CONFIG)

    assert release.release_id(release.scan(str(first))) == release.release_id(
        release.scan(str(second))
    )


def test_release_id_ignores_bytecode_caches(tmp_path):
    clean = write_tree(tmp_path / "clean", CONFIG)
    cached = write_tree(
        tmp_path / "cached",
        {
            **CONFIG,
            "router/__pycache__/routing.cpython-313.pyc": "bytecode",
            "router/stray.pyc": "bytecode",
        },
    )

    assert release.release_id(release.scan(str(clean))) == release.release_id(
        release.scan(str(cached))
    )


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: (d / "kamailio.cfg").write_text("changed\n"), id="content"),
        pytest.param(lambda d: (d / "kamailio.cfg").chmod(0o600), id="mode"),
        pytest.param(lambda d: (d / "extra.cfg").write_text(""), id="new-file"),
        pytest.param(lambda d: (d / "link").symlink_to("kamailio.cfg"), id="symlink"),
    ],
)
def test_release_id_changes_with_content(tmp_path, mutate):
    directory = write_tree(tmp_path / "config", CONFIG)
    before = release.release_id(release.scan(str(directory)))

    mutate(directory)

    assert release.release_id(release.scan(str(directory))) != before


def test_first_release_becomes_current(staging, root):
    write_tree(staging, {**CONFIG, "router/__pycache__/routing.cpython-313.pyc": "x"})
    (staging / "router/routing.py").chmod(0o640)
    (staging / "kamailio.link").symlink_to("kamailio.cfg")

    outcome = release.present(str(staging), str(root))

    assert outcome.changed
    assert pointer(root, "current") == f"releases/{outcome.release}"
    assert pointer(root, "previous") is None
    assert tree(root / "current") == {**CONFIG, "kamailio.link": "-> kamailio.cfg"}
    assert (root / "current/router/routing.py").stat().st_mode & 0o777 == 0o640
    assert outcome.changed_files == ["kamailio.cfg", "kamailio.link", "router/routing.py"]


def test_unchanged_content_changes_nothing_and_skips_validation(staging, root):
    first = deploy(staging, root, CONFIG)

    second = deploy(staging, root, CONFIG, validate=[["false"]])

    assert not second.changed
    assert second.release == first.release
    assert second.actions == []


def test_validation_runs_on_the_staging_directory(staging, root):
    same_directory = ["sh", "-c", 'test "$1" = "$2"', "sh", "{release}", str(staging)]
    outcome = deploy(staging, root, CONFIG, validate=[["test", "-f", "{release}/kamailio.cfg"]])
    assert outcome.changed

    changed = deploy(staging, root, {**CONFIG, "kamailio.cfg": "v2\n"}, validate=[same_directory])

    assert changed.changed


def test_failing_validation_leaves_current_untouched(staging, root):
    first = deploy(staging, root, CONFIG)
    failing = ["sh", "-c", "echo 'error: bad listen line' >&2; exit 3"]

    with pytest.raises(release.ReleaseError) as raised:
        deploy(staging, root, {**CONFIG, "kamailio.cfg": "broken\n"}, validate=[failing])

    assert "rc 3" in str(raised.value)
    assert "error: bad listen line" in str(raised.value)
    assert pointer(root, "current") == f"releases/{first.release}"
    assert os.listdir(root / "releases") == [first.release]


def test_failing_validation_reports_the_last_20_lines(staging, root):
    with pytest.raises(release.ReleaseError) as raised:
        deploy(staging, root, CONFIG, validate=[["sh", "-c", "seq 1 30; exit 1"]])

    output = str(raised.value).splitlines()[1:]
    assert output == [str(number) for number in range(11, 31)]


def test_syntax_error_names_file_and_line_and_leaves_current(staging, root):
    first = deploy(staging, root, CONFIG)
    broken = {**CONFIG, "router/routing.py": "import os\ndef ksr_request_route(msg:\n"}

    with pytest.raises(release.ReleaseError) as raised:
        deploy(staging, root, broken)

    assert "router/routing.py line 2" in str(raised.value)
    assert pointer(root, "current") == f"releases/{first.release}"


def test_check_mode_writes_nothing(staging, root):
    first = deploy(staging, root, CONFIG)
    before = tree(root)

    outcome = deploy(
        staging, root, {**CONFIG, "kamailio.cfg": "v2\n"}, validate=[["false"]], check_mode=True
    )

    assert outcome.changed
    assert outcome.previous == first.release
    assert outcome.changed_files == ["kamailio.cfg"]
    assert tree(root) == before
    assert sorted(os.listdir(root / "releases")) == [first.release]


def test_check_mode_on_a_fresh_host_reports_a_change(tmp_path):
    outcome = release.present(str(tmp_path / "missing"), str(tmp_path / "root"), check_mode=True)

    assert outcome.changed
    assert not (tmp_path / "root").exists()


def test_missing_staging_fails_outside_check_mode(tmp_path):
    with pytest.raises(release.ReleaseError, match="does not exist"):
        release.present(str(tmp_path / "missing"), str(tmp_path / "root"))


def test_check_mode_still_compiles_python(staging, root):
    with pytest.raises(release.ReleaseError, match=r"routing\.py line 1"):
        deploy(staging, root, {"routing.py": "def (\n"}, check_mode=True)


def test_new_release_keeps_the_old_one_as_previous(staging, root):
    first = deploy(staging, root, CONFIG)

    second = deploy(staging, root, {**CONFIG, "kamailio.cfg": "v2\n"})

    assert second.previous == first.release
    assert pointer(root, "previous") == f"releases/{first.release}"
    assert pointer(root, "current") == f"releases/{second.release}"


def test_rollback_swaps_current_and_previous(staging, root):
    first = deploy(staging, root, CONFIG)
    second = deploy(staging, root, {**CONFIG, "kamailio.cfg": "v2\n"})

    outcome = release.rollback(str(root))

    assert (outcome.release, outcome.previous) == (first.release, second.release)
    assert pointer(root, "current") == f"releases/{first.release}"
    assert pointer(root, "previous") == f"releases/{second.release}"
    assert (root / "current/kamailio.cfg").read_text() == CONFIG["kamailio.cfg"]


def test_rollback_without_previous_fails(staging, root):
    deploy(staging, root, CONFIG)

    with pytest.raises(release.ReleaseError, match="no previous release"):
        release.rollback(str(root))


def test_prune_keeps_the_newest_releases(staging, root):
    ids = []
    for version in range(5):
        outcome = deploy(staging, root, {"kamailio.cfg": f"v{version}\n"}, keep=3)
        ids.append(outcome.release)
        # Distinct, ordered mtimes even on file systems with coarse timestamps.
        os.utime(root / "releases" / outcome.release, (1000 + version, 1000 + version))

    assert sorted(os.listdir(root / "releases")) == sorted(ids[2:])


@pytest.mark.parametrize(
    ("keep", "protected", "prunable"),
    [
        (3, set(), ["a"]),
        (2, {"a"}, ["b", "c"]),
        (1, {"a", "b"}, ["c", "d"]),
        (5, set(), []),
    ],
)
def test_prune_never_removes_current_or_previous(keep, protected, prunable):
    mtimes = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}

    assert release.select_prunable(mtimes, keep, protected) == prunable


def test_leftovers_of_an_interrupted_run_are_redone(staging, root):
    write_tree(staging, CONFIG)
    expected = release.release_id(release.scan(str(staging)))
    write_tree(root / "releases" / f".{expected}.tmp", {"kamailio.cfg": "half cop"})
    (root / ".current.tmp").symlink_to("releases/gone")

    outcome = release.present(str(staging), str(root))

    assert outcome.release == expected
    assert tree(root / "current") == CONFIG
    assert sorted(os.listdir(root / "releases")) == [expected]
    assert not (root / ".current.tmp").is_symlink()


@pytest.mark.parametrize("leftover", [CONFIG, {"kamailio.cfg": "half"}], ids=["intact", "partial"])
def test_release_directory_from_an_interrupted_run_is_reused_or_replaced(staging, root, leftover):
    write_tree(staging, CONFIG)
    expected = release.release_id(release.scan(str(staging)))
    write_tree(root / "releases" / expected, leftover)

    release.present(str(staging), str(root))

    assert tree(root / "current") == CONFIG


def test_dangling_current_counts_as_no_current(staging, root):
    (root / "releases").mkdir(parents=True)
    (root / "current").symlink_to("releases/0123456789abcdef")
    staging.mkdir()

    outcome = release.present(str(staging), str(root))

    assert outcome.changed
    assert outcome.previous is None
    assert pointer(root, "current") == f"releases/{outcome.release}"


def test_module_releases_then_reports_no_change(staging, root, tmp_path):
    write_tree(staging, CONFIG)
    args = {"staging": str(staging), "root": str(root)}

    first = run_module(tmp_path, args)
    second = run_module(tmp_path, {**args, "validate": [["false"]]})

    assert (first["changed"], second["changed"]) == (True, False)
    assert second["release"] == first["release"]


def test_module_check_mode_writes_nothing(staging, root, tmp_path):
    write_tree(staging, CONFIG)

    result = run_module(tmp_path, {"staging": str(staging), "root": str(root)}, check=True)

    assert result["changed"]
    assert not root.exists()


def test_module_diff_lists_changed_files(staging, root, tmp_path):
    first = deploy(staging, root, {"a.cfg": "a\n", "b.cfg": "b\n"})
    write_tree(staging, {"a.cfg": "a2\n", "c.cfg": "c\n"})
    (staging / "b.cfg").unlink()

    result = run_module(tmp_path, {"staging": str(staging), "root": str(root)}, diff=True)

    def line(path: str, content: str) -> str:
        return f"{path} {hashlib.sha256(content.encode()).hexdigest()[:12]}\n"

    assert result["changed_files"] == ["a.cfg", "b.cfg", "c.cfg"]
    assert result["diff"] == {
        "before": line("a.cfg", "a\n") + line("b.cfg", "b\n"),
        "after": line("a.cfg", "a2\n") + line("c.cfg", "c\n"),
        "before_header": f"{root}/current ({first.release})",
        "after_header": f"{root}/current ({result['release']})",
    }


def test_module_reports_failed_validation(staging, root, tmp_path):
    write_tree(staging, CONFIG)
    args = {"staging": str(staging), "root": str(root), "validate": [["sh", "-c", "exit 4"]]}

    result = run_module(tmp_path, args)

    assert result["failed"]
    assert "sh -c 'exit 4' failed with rc 4" in result["msg"]
    assert not (root / "current").exists()


def test_module_rolls_back(staging, root, tmp_path):
    first = deploy(staging, root, CONFIG)
    deploy(staging, root, {**CONFIG, "kamailio.cfg": "v2\n"})

    result = run_module(tmp_path, {"root": str(root), "state": "rollback"})

    assert result["changed"]
    assert result["release"] == first.release
    assert pointer(root, "current") == f"releases/{first.release}"
