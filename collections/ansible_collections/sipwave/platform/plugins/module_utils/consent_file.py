# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The customers' phase-2 decisions from the customer panel's CSV (login, decision[, source]).

Unlike the export, a consent file with any bad row is refused as a whole, every problem named
as ``file:line: message``: a customer's consent is never guessed."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.sipwave.platform.plugins.module_utils.csv_records import records
from ansible_collections.sipwave.platform.plugins.module_utils.export_fields import LOGIN_PATTERN
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import ExportError

CONSENT_COLUMNS = ("login", "decision")
CONSENT_DECISIONS = ("migrate", "close")


@dataclass(frozen=True)
class ConsentDecision:
    login: str
    decision: str
    source: str


def read_consent(path: str) -> list[ConsentDecision]:
    """Decisions from a customer-panel CSV (login, decision[, source]); ExportError on any
    bad row, naming file and line, because a consent must never be guessed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115  # closed below; records stream from it
    except OSError as exc:
        raise ExportError(f"cannot read the consent file {path}: {exc.strerror}") from exc
    problems: list[str] = []
    decisions: dict[str, tuple[int, ConsentDecision]] = {}
    with handle:
        pending = records(handle)
        first = next(pending, None)
        if first is None or first.undecodable:
            raise ExportError(f"{path}:1: a header row login,decision[,source] is expected")
        header = [name.strip().lower() for name in first.fields]
        if any(name not in header for name in CONSENT_COLUMNS):
            raise ExportError(f"{path}:{first.line}: header must name login and decision")
        for record in pending:
            if len(record.text_lines) == 1 and not record.text_lines[0].strip():
                continue
            if record.undecodable or record.unterminated:
                message = record.undecodable[0][1] if record.undecodable else "open quote"
                problems.append(f"{path}:{record.line}: {message}")
                continue
            fields = record.fields
            if len(fields) != len(header):
                problems.append(
                    f"{path}:{record.line}: expected {len(header)} fields, found {len(fields)}"
                )
                continue
            values = {name: value.strip() for name, value in zip(header, fields, strict=True)}
            login, decision = values["login"], values["decision"].lower()
            if not LOGIN_PATTERN.fullmatch(login):
                problems.append(f"{path}:{record.line}: login {login!r} is not a login")
            elif decision not in CONSENT_DECISIONS:
                problems.append(
                    f"{path}:{record.line}: decision {values['decision']!r} is not "
                    f"{' or '.join(CONSENT_DECISIONS)}"
                )
            elif login in decisions and decisions[login][1].decision != decision:
                problems.append(
                    f"{path}:{record.line}: login {login!r} decided otherwise on line "
                    f"{decisions[login][0]}"
                )
            else:
                source = values.get("source") or f"{path}:{record.line}"
                decisions.setdefault(login, (record.line, ConsentDecision(login, decision, source)))
    if problems:
        raise ExportError("invalid consent file:\n" + "\n".join(problems))
    return [decision for _line, decision in decisions.values()]
