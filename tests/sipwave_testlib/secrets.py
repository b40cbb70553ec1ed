"""A scenario's secrets, gathered without the code under test, and the search of the
scenario's -vvvv playbook transcripts (sipwave_testlib.playbooks) for them.

The secrets come from what the scenario is given: every legacy export it names (read as CSV
here) and the lab's, the variables of its molecule.yml and of inventories/lab. From those
this module derives what the platform derives (HA1 and HA1b of the legacy and the phase-2
identity, the generated phase-2 password of an export row with only an HA1, every device's
provisioning token), by the formulas the platform documents; tests/unit/test_secrets_lib.py
holds the two HMAC derivations against the platform's own so that they cannot drift apart.

A leak is reported by the secret's kind, whose it is, the transcript, line and task: never
by its value.
"""

import csv
import hashlib
import hmac
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml

PROJECT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = PROJECT / "inventories" / "lab"
LAB_EXPORT = LAB_INVENTORY / "files" / "legacy_export.csv"
BASE_CONFIG = PROJECT / ".config" / "molecule" / "config.yml"

# The platform's derivations (module_utils/credentials.py generated_password and
# device_token).
PHASE2_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PHASE2_PASSWORD_LENGTH = 16
TOKEN_MESSAGE_PREFIX = "provisioning-token:"
TOKEN_HEX_DIGITS = 32

# Shorter values would match text that is no secret at all; none of the project's are.
MIN_LENGTH = 6
# Values this short, or made of digits only (PINs), are searched as whole words: a PIN's
# eight digits would otherwise turn up inside timestamps and temporary file names.
WORD_MATCH_BELOW = 10

# Where each playbook of playbooks/ runs at -vvvv with its transcript searched (scenario
# names), or why it is not run by any scenario. A scenario's test_zz_secrets.py checks its
# own entries; tests/unit/test_secrets_lib.py checks that every playbook is listed.
PLAYBOOK_COVERAGE: dict[str, tuple[str, ...] | str] = {
    "kamailio.yml": ("migration", "kamailio"),
    "legacy_platform.yml": ("migration",),
    "mail_server.yml": ("migration", "provisioning"),
    "migrate_wave.yml": ("migration", "provisioning", "asterisk"),
    "record_consent.yml": ("migration", "provisioning", "asterisk"),
    "rollback_wave.yml": ("migration", "asterisk"),
    "rollback_host.yml": ("kamailio", "asterisk", "provisioning"),
    "notify_wave.yml": ("migration",),
    "provisioning.yml": ("provisioning",),
    "asterisk.yml": ("asterisk",),
    "wave_dialin.yml": ("asterisk",),
    "legacy_forwarding.yml": ("migration",),
    "port.yml": ("migration",),
    "port_donor.yml": ("migration",),
    "cutover.yml": ("migration",),
    "backup.yml": ("migration", "asterisk"),
    "restore.yml": ("migration",),
    "wave_status.yml": ("migration",),
    "backup_list.yml": ("migration",),
    "account_show.yml": ("migration",),
    "cost_report.yml": ("kamailio",),
    "monitoring.yml": ("asterisk",),
    "health.yml": ("asterisk", "provisioning"),
    "unregistered_report.yml": ("asterisk",),
    "user_add.yml": ("provisioning",),
    "site.yml": "only imports kamailio.yml, asterisk.yml, provisioning.yml and monitoring.yml "
    "(each covered on its own); it has no play or variable of its own; make demo runs it",
    "lab.yml": "the demo's containers (make lab-up, make lab-down): podman on localhost with "
    "no secret among its variables",
}


@dataclass(frozen=True)
class Secret:
    kind: str
    owner: str  # whose secret, for the message: never the value
    value: str = field(repr=False)


@dataclass(frozen=True)
class Leak:
    secret: Secret
    transcript: Path
    line: int
    task: str

    def __str__(self) -> str:
        return (
            f"{self.secret.kind} of {self.secret.owner} in {self.transcript.name}:{self.line} "
            f"({self.task})"
        )


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def ha1_pair(user: str, domain: str, password: str) -> tuple[str, str]:
    """Kamailio's ha1 and ha1b columns: MD5(user:realm:password), MD5(user@domain:...)."""
    return md5(f"{user}:{domain}:{password}"), md5(f"{user}@{domain}:{domain}:{password}")


def phase2_password(site_secret: str, login: str) -> str:
    digest = hmac.new(site_secret.encode(), f"phase2:{login}".encode(), hashlib.sha256)
    value = int.from_bytes(digest.digest(), "big")
    chars = []
    for _ in range(PHASE2_PASSWORD_LENGTH):
        value, index = divmod(value, len(PHASE2_ALPHABET))
        chars.append(PHASE2_ALPHABET[index])
    return "".join(chars)


def device_token(site_secret: str, mac: str) -> str:
    message = (TOKEN_MESSAGE_PREFIX + mac.lower()).encode()
    return hmac.new(site_secret.encode(), message, hashlib.sha256).hexdigest()[:TOKEN_HEX_DIGITS]


# -- the scenario's variables ---------------------------------------------------------------


def _yaml_files(directory: Path) -> Iterator[Path]:
    for sub in ("group_vars", "host_vars"):
        yield from sorted((directory / sub).rglob("*.yml"))


def _expand(value: str, scenario_dir: Path) -> str:
    places = {
        "MOLECULE_PROJECT_DIRECTORY": str(PROJECT),
        "MOLECULE_SCENARIO_DIRECTORY": str(scenario_dir),
        "MOLECULE_EPHEMERAL_DIRECTORY": os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""),
    }
    return re.sub(r"\$\{(\w+)\}", lambda m: places.get(m[1], m[0]), value)


def _documents(scenario_dir: Path) -> list[tuple[str, object]]:
    """(source, YAML data) of every variable file the scenario and the lab inventory have."""
    documents = []
    for path in _yaml_files(LAB_INVENTORY):
        documents.append((str(path.relative_to(PROJECT)), yaml.safe_load(path.read_text())))
    for path in (BASE_CONFIG, scenario_dir / "molecule.yml"):
        if path.exists():
            data = yaml.safe_load(path.read_text()) or {}
            inventory = (data.get("provisioner") or {}).get("inventory") or {}
            documents.append((str(path.relative_to(PROJECT)), inventory))
    return documents


def _walk(data, path: str = "") -> Iterator[tuple[str, str, object]]:
    """(key path, key, value) of every mapping entry, depth first."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), value
            yield from _walk(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _walk(value, f"{path}[{index}]")


def _kind_of_variable(key: str) -> str | None:
    key = key.lower()
    if key.endswith("password"):
        return "DB password" if "db" in key or "postgres" in key else "password"
    if key == "pin" or key.endswith("_pin"):
        return "PIN"
    if "secret" in key:
        return "site secret" if "site" in key else "secret"
    if "token" in key:
        return "token"
    return None


_REFERENCE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class ScenarioVars:
    secrets: list[Secret]
    plain: dict[str, str]  # every non-secret string variable by name (last one wins)
    subscriber_entries: list[tuple[str, Mapping]]
    exports: list[Path]

    def resolve(self, value: str) -> str:
        """A value that only refers to another variable ("{{ name }}") gets that one's."""
        found = _REFERENCE.fullmatch(value.strip())
        return self.plain.get(found[1], value) if found else value

    def values(self, name: str) -> set[str]:
        return {s.value for s in self.secrets if s.kind == name}


def scenario_vars(scenario_dir: Path) -> ScenarioVars:
    found = ScenarioVars([], {}, [], [LAB_EXPORT])
    for source, data in _documents(scenario_dir):
        for where, key, value in _walk(data):
            if isinstance(value, Mapping) and {"username", "domain", "password"} <= set(value):
                found.subscriber_entries.append((f"{source}: {where}", value))
            if not isinstance(value, str | int) or isinstance(value, bool):
                continue
            value = str(value)
            kind = _kind_of_variable(key)
            if kind and "{{" not in value:
                found.secrets.append(Secret(kind, f"{source}: {where}", value))
            elif kind is None:
                found.plain[key] = value
            # The lab's own ("{{ inventory_dir }}/...") is LAB_EXPORT.
            if key == "sipwave_legacy_export" and "{{" not in value:
                export = Path(_expand(value, scenario_dir))
                if export not in found.exports:
                    found.exports.append(export)
    return found


# -- the secrets -------------------------------------------------------------------------------


def _export_secrets(export: Path, found: ScenarioVars) -> Iterator[Secret]:
    site_secrets = found.values("site secret")
    prefixes = {found.plain.get("sipwave_login_prefix", "tnf")}
    new_domain = found.plain.get("sipwave_new_domain", "")
    name = export.relative_to(PROJECT) if export.is_relative_to(PROJECT) else export
    with export.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            login = (row.get("login") or "").strip()
            owner = f"login {login} ({name}:{reader.line_num})"
            password, ha1 = row.get("password") or "", row.get("ha1") or ""
            domain = (row.get("domain") or "").strip()
            if ha1:
                yield Secret("HA1", owner, ha1)
            phase2 = [(prefix + login, new_domain) for prefix in prefixes]
            if password:
                yield Secret("password", owner, password)
                credentials = [(password, [(login, domain), *phase2], "HA1")]
            else:
                credentials = []
                for secret in site_secrets:
                    generated = phase2_password(secret, login)
                    yield Secret("generated phase-2 password", owner, generated)
                    kind = "HA1 of the generated phase-2 password"
                    credentials.append((generated, phase2, kind))
            for value, identities, kind in credentials:
                for user, realm in identities:
                    for hashed in ha1_pair(user, realm, value):
                        yield Secret(kind, owner, hashed)
            for device in (row.get("devices") or "").split(";"):
                parts = device.strip().split(":", 2)
                mac = re.sub(r"[:.-]", "", parts[-1]).lower() if len(parts) == 3 else ""
                if re.fullmatch(r"[0-9a-f]{12}", mac):
                    for secret in site_secrets:
                        token = device_token(secret, mac)
                        yield Secret("provisioning token", f"{owner} device {mac}", token)


RUNTIME_SECRETS = "runtime-secrets.jsonl"


def record_runtime_secret(kind: str, owner: str, value: str) -> None:
    """A secret a test learnt or made while the scenario ran (a secret code read from a
    mail, a wrong one it typed): the last check searches the transcripts for it too."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / RUNTIME_SECRETS
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "owner": owner, "value": value}) + "\n")


def _runtime_secrets() -> Iterator[Secret]:
    directory = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    path = Path(directory) / RUNTIME_SECRETS if directory else None
    if path is None or not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        yield Secret(entry["kind"], entry["owner"], entry["value"])


def scenario_secrets(scenario_dir: Path) -> list[Secret]:
    """Every secret of the scenario at ``scenario_dir`` that is long enough to search for,
    with those its tests recorded while it ran (record_runtime_secret)."""
    found = scenario_vars(scenario_dir)
    secrets = [*found.secrets, *_runtime_secrets()]
    for owner, entry in found.subscriber_entries:
        user, domain = found.resolve(str(entry["username"])), found.resolve(str(entry["domain"]))
        password = str(entry["password"])
        if "{{" not in password:
            secrets += [Secret("HA1", owner, h) for h in ha1_pair(user, domain, password)]
    for export in found.exports:
        secrets += _export_secrets(export, found)
    return [s for s in secrets if len(s.value) >= MIN_LENGTH]


def _variants(secret: Secret) -> set[str]:
    """The secret as-is and as JSON, a URL and (hexadecimal ones) upper-case would show it."""
    value = secret.value
    variants = {value, json.dumps(value)[1:-1], quote(value, safe="")}
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        variants |= {value.lower(), value.upper()}
    return {v for v in variants if "\n" not in v}


# -- the search --------------------------------------------------------------------------------


def _grep(patterns: Iterable[str], files: list[Path], whole_words: bool) -> Iterator[tuple]:
    """(file, line number, matched text) of every occurrence; grep -F is Aho-Corasick, so
    thousands of secrets cost one pass over the transcripts."""
    patterns = "\n".join(patterns)
    if not patterns or not files:
        return
    command = ["grep", "-F", "-H", "-n", "-o", "-Z", "-f", "-"]
    command += ["-w"] if whole_words else []
    result = subprocess.run(
        [*command, "--", *map(str, files)], input=patterns.encode(), capture_output=True,
        env=dict(os.environ, LC_ALL="C"), check=False,
    )  # fmt: skip
    if result.returncode > 1:
        raise RuntimeError(f"grep failed: {result.stderr.decode(errors='replace')}")
    for hit in result.stdout.split(b"\n"):
        if hit:
            path, _, rest = hit.partition(b"\0")
            line, _, text = rest.partition(b":")
            yield Path(path.decode()), int(line), text.decode(errors="replace")


def _task_at(path: Path, line: int) -> str:
    """The TASK or PLAY header above ``line`` of a transcript."""
    header = "before the first play"
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if number > line:
                break
            found = re.search(r"\b((?:TASK|PLAY|RUNNING HANDLER) \[.*?\])", text)
            if found:
                header = found[1]
    return header


def find_leaks(secrets: Iterable[Secret], transcripts: list[Path]) -> list[Leak]:
    by_text: dict[str, Secret] = {}
    for secret in secrets:
        for variant in _variants(secret):
            by_text.setdefault(variant, secret)
    word_like = {t for t in by_text if t.isdigit() or len(t) < WORD_MATCH_BELOW}
    leaks = []
    for patterns, whole_words in ((word_like, True), (set(by_text) - word_like, False)):
        for path, line, text in _grep(sorted(patterns), transcripts, whole_words):
            leaks.append(Leak(by_text[text], path, line, _task_at(path, line)))
    return sorted(leaks, key=lambda leak: (str(leak.transcript), leak.line))


# -- which playbooks ran -----------------------------------------------------------------------


def play_names(playbook: Path) -> list[str]:
    """The names of the plays a playbook has itself (imports are the imported ones')."""
    plays = yaml.safe_load(playbook.read_text()) or []
    return [play["name"] for play in plays if "hosts" in play and "name" in play]


_PLAY = re.compile(r"PLAY \[(.*)\] \*+$")


def plays_run(transcript: Path) -> set[str]:
    """Names of the plays that ran on at least one host in a transcript."""
    ran, current = set(), None
    with transcript.open(encoding="utf-8", errors="replace") as handle:
        for text in handle:
            text = text.rstrip("\n")
            found = _PLAY.search(text)
            if found:
                current = found[1]
            elif current and re.search(r"\b(TASK|RUNNING HANDLER) \[", text):
                ran.add(current)
                current = None
    return ran


def playbooks_run(transcripts: list[Path]) -> dict[str, list[str]]:
    """playbooks/*.yml that had a play run, with the transcripts it ran in."""
    where: dict[str, list[str]] = {}
    names = {p.name: play_names(p) for p in sorted((PROJECT / "playbooks").glob("*.yml"))}
    for transcript in transcripts:
        ran = plays_run(transcript)
        for playbook, plays in names.items():
            if ran & set(plays):
                where.setdefault(playbook, []).append(transcript.name)
    return where


def playbooks_of_scenario(scenario: str) -> list[str]:
    return sorted(
        name
        for name, covered in PLAYBOOK_COVERAGE.items()
        if isinstance(covered, tuple) and scenario in covered
    )
