# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phone provisioning: which files each vendor's phones request, where per-device tokens go, and the
rendering of every device's files in one pass that writes only what changed.

Layout on the provisioning host: ``<output_dir>/<token>/<file>``. The token is an HMAC of
the device's MAC under the site secret, so it is stable across runs and nothing extra is
stored; nginx serves ``/p/<token>/<file>`` from that tree, so a request proves it is the
device only by knowing its token (a MAC alone is not a secret).

Nothing in this file puts a password or a token into a message, a diff or a result.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ansible_collections.sipwave.platform.plugins.module_utils.control_chars import printable
from ansible_collections.sipwave.platform.plugins.module_utils.files import atomic_write

# Templates live under <vendor>/ in the role's templates/phones (or the site's override
# directory). Each vendor's phones request these files from their provisioning URL; the
# patterns use {mac} (lower case, no separators) or {MAC} (upper case).
VENDOR_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    # Yealink: MAC-oriented file <mac>.cfg ("#!version:1.0.0.1" header, key = value).
    "yealink": (("yealink/mac.cfg.j2", "{mac}.cfg"),),
    # Poly/Polycom UC Software: the phone asks for the master file <mac>.cfg, which lists
    # the configuration files to load; the per-phone file is <mac>-phone.cfg.
    "polycom": (
        ("polycom/mac.cfg.j2", "{mac}.cfg"),
        ("polycom/mac-phone.cfg.j2", "{mac}-phone.cfg"),
    ),
    # Grandstream: cfg<mac>.xml, a <gs_provision> document of P-value settings.
    "grandstream": (("grandstream/cfgmac.xml.j2", "cfg{mac}.xml"),),
    # Snom: the setting server URL ends in {mac}, replaced by the upper-case MAC: <MAC>.xml.
    "snom": (("snom/mac.xml.j2", "{MAC}.xml"),),
    # Cisco SPA / MPP (3PCC): the profile rule $MA.xml, a <flat-profile> document.
    "cisco": (("cisco/mac.xml.j2", "{mac}.xml"),),
    # Fanvil: <mac>.cfg in the "<<VOIP CONFIG FILE>>" module format.
    "fanvil": (("fanvil/mac.cfg.j2", "{mac}.cfg"),),
    # Gigaset pro (N510/N670/N870 IP PRO): <MAC>.xml, a <ProviderFrame> of SYMB_ITEMs.
    "gigaset": (("gigaset/mac.xml.j2", "{MAC}.xml"),),
}
_TEMP_PREFIX = ".sipwave-"


class ProvisioningError(Exception):
    """Bad input or an unusable output directory; the message never holds a secret."""


def file_names(vendor: str, mac: str) -> list[tuple[str, str]]:
    """(template, file name) pairs a device of ``vendor`` is served."""
    try:
        pairs = VENDOR_FILES[vendor]
    except KeyError as exc:
        raise ProvisioningError(
            f"unknown vendor {vendor!r} (known: {', '.join(sorted(VENDOR_FILES))})"
        ) from exc
    return [(template, name.format(mac=mac.lower(), MAC=mac.upper())) for template, name in pairs]


@dataclass(frozen=True)
class Line:
    """The SIP account a device registers with. ``password`` is None when it is not known
    in plaintext (an HA1-only export in phase 1): the template then leaves it out and the
    phone keeps the password it already has."""

    login: str  # the legacy login: the account's key in the migration database
    state: str
    username: str
    domain: str
    display_name: str
    password: str | None = field(repr=False)

    @property
    def phase(self) -> int:
        return 2 if self.state == "phase2" else 1


@dataclass(frozen=True)
class DeviceConfig:
    mac: str
    vendor: str
    model: str
    token: str = field(repr=False)
    line: Line

    def context(self, site: Mapping) -> dict:
        device_url = f"{site.get('provisioning_url', '').rstrip('/')}/p/{self.token}/"
        return {
            "mac": self.mac,
            "mac_upper": self.mac.upper(),
            "vendor": self.vendor,
            "model": self.model,
            "device_url": device_url,
            "line": {
                "login": self.line.login,
                "username": self.line.username,
                "auth_username": self.line.username,
                "domain": self.line.domain,
                "display_name": self.line.display_name,
                "password": self.line.password,
                "phase": self.line.phase,
            },
            "site": site,
        }


# -- rendering ---------------------------------------------------------------------------------


def _xml_escape(value) -> str:
    text = "" if value is None else str(value)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def _one_line(value) -> str:
    """A value for a line-based format (key = value): a line break would start a new key."""
    return printable(value)


def _xml_comment(value) -> str:
    """Text inside an XML comment, which ends at '--'."""
    return _xml_escape(value).replace("--", "- -")


def make_environment(templates: Mapping[str, str]):
    """A Jinja2 environment over the given template sources (name -> text)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.DictLoader(dict(templates)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # Every value printed by any template (a site's own ones too) loses its control
        # characters: a line break in a name or model would add a key to a key = value
        # file, and XML 1.0 forbids most of them.
        finalize=printable,
    )
    environment.filters["xml"] = _xml_escape
    environment.filters["xml_comment"] = _xml_comment
    environment.filters["oneline"] = _one_line
    return environment


@dataclass
class RenderResult:
    created: list[tuple[str, str]] = field(default_factory=list)  # (mac, file name)
    updated: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # file names (token dirs never shown)
    unchanged: int = 0
    devices: int = 0
    updated_macs: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def counts(self) -> dict:
        return {
            "devices": self.devices,
            "files": len(self.created) + len(self.updated) + self.unchanged,
            "created": len(self.created),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class Ownership:
    uid: int = -1
    gid: int = -1
    file_mode: int = 0o640
    dir_mode: int = 0o750


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _file_ok(path: str, owner: Ownership) -> bool:
    info = os.stat(path)
    if stat.S_IMODE(info.st_mode) != owner.file_mode:
        return False
    if owner.uid != -1 and info.st_uid != owner.uid:
        return False
    return owner.gid == -1 or info.st_gid == owner.gid


def _write_atomically(directory: str, name: str, content: bytes, owner: Ownership) -> None:
    """A reader sees the old or the new file, never a part of one; a crash leaves at most a
    temporary file (_TEMP_PREFIX) the next run removes. Not fsynced: every run rewrites what
    differs, and thousands of small files would each wait for the disk."""
    atomic_write(
        os.path.join(directory, name), content, owner.file_mode, owner.uid, owner.gid,
        fsync=False, temp_prefix=_TEMP_PREFIX,
    )  # fmt: skip


def _ensure_dir(path: str, owner: Ownership) -> None:
    try:
        os.mkdir(path, owner.dir_mode)
    except FileExistsError:
        return
    os.chmod(path, owner.dir_mode)  # mkdir's mode is masked by the umask
    if owner.uid != -1 or owner.gid != -1:
        os.chown(path, owner.uid, owner.gid)


class Renderer:
    """Renders every device's files into ``output_dir`` and removes what no device needs."""

    def __init__(
        self,
        templates: Mapping[str, str],
        site: Mapping,
        output_dir: str,
        owner: Ownership | None = None,
    ) -> None:
        self.environment = make_environment(templates)
        self.site = dict(site)
        self.output_dir = output_dir
        self.owner = owner or Ownership()
        self._compiled: dict[str, object] = {}

    def _template(self, name: str):
        compiled = self._compiled.get(name)
        if compiled is None:
            import jinja2

            try:
                compiled = self.environment.get_template(name)
            except jinja2.TemplateNotFound as exc:
                raise ProvisioningError(f"no template {name}") from exc
            except jinja2.TemplateSyntaxError as exc:
                raise ProvisioningError(
                    f"template {name}:{exc.lineno}: syntax error: {exc.message}"
                ) from exc
            self._compiled[name] = compiled
        return compiled

    def render_device(self, device: DeviceConfig) -> list[tuple[str, bytes]]:
        """(file name, content) of each file of one device."""
        import jinja2

        context = device.context(self.site)
        files = []
        for template_name, file_name in file_names(device.vendor, device.mac):
            try:
                text = self._template(template_name).render(context)
            except jinja2.UndefinedError as exc:
                # The message names a variable, never a value.
                raise ProvisioningError(
                    f"template {template_name} for device {device.mac}: {exc.message}"
                ) from exc
            files.append((file_name, text.encode("utf-8")))
        return files

    def run(
        self,
        devices: Iterable[DeviceConfig],
        check_mode: bool,
        before_updates: Callable[[list[str]], None] | None = None,
    ) -> RenderResult:
        """Render and write every device's files. New files are written at once; files that
        replace existing ones wait until ``before_updates`` was called with the MACs of their
        devices (to record the phones owed a re-sync before any of them changes)."""
        result = RenderResult()
        wanted: dict[str, set[str]] = {}
        updates: list[tuple[str, str, bytes]] = []  # (directory, file name, content)
        if not check_mode:
            os.makedirs(self.output_dir, mode=0o755, exist_ok=True)
        for device in devices:
            if device.token in wanted:
                raise ProvisioningError(f"device {device.mac} is listed twice")
            result.devices += 1
            directory = os.path.join(self.output_dir, device.token)
            names = wanted[device.token] = set()
            device_updated = False
            exists = os.path.isdir(directory)
            if not check_mode and not exists:
                _ensure_dir(directory, self.owner)
            for name, content in self.render_device(device):
                names.add(name)
                path = os.path.join(directory, name)
                current = _read(path) if exists else None
                if current == content and _file_ok(path, self.owner):
                    result.unchanged += 1
                    continue
                if current is None:
                    result.created.append((device.mac, name))
                    if not check_mode:
                        _write_atomically(directory, name, content, self.owner)
                    continue
                result.updated.append((device.mac, name))
                device_updated = True
                updates.append((directory, name, content))
            if device_updated:
                result.updated_macs.append(device.mac)
        if not check_mode:
            if before_updates is not None and result.updated_macs:
                before_updates(list(result.updated_macs))
            for directory, name, content in updates:
                _write_atomically(directory, name, content, self.owner)
        result.removed = self._remove_others(wanted, check_mode)
        return result

    def _remove_others(self, wanted: Mapping[str, set[str]], check_mode: bool) -> list[str]:
        """Remove files and token directories of devices no longer present (and leftover
        temporary files of a crashed run)."""
        removed: list[str] = []
        if not os.path.isdir(self.output_dir):
            return removed
        with os.scandir(self.output_dir) as entries:
            directories = [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
        for directory in directories:
            keep = wanted.get(directory.name, set())
            with os.scandir(directory.path) as files:
                stale = [f for f in files if f.name not in keep]
            for entry in stale:
                if not entry.name.startswith(_TEMP_PREFIX):
                    removed.append(entry.name)
                if not check_mode:
                    os.unlink(entry.path)
            if not keep and not check_mode:
                os.rmdir(directory.path)
        return removed


# -- which devices, with which credentials ----------------------------------------------------


@dataclass(frozen=True)
class AccountState:
    """The migration database's view of an account (no secret)."""

    login: str
    state: str
    current_username: str | None
    current_domain: str | None


def line_for(
    login: str,
    legacy_domain: str,
    display_name: str,
    password: str,
    state: AccountState,
    generated: str | None,
) -> Line:
    """The account a device registers with in the account's phase.

    Phase 1 keeps the legacy login, domain and password. Phase 2 uses the identity the wave
    gave (prefix + login on the new domain) with the same password, or, where the export
    only had an HA1, the generated password the wave engine mailed to the customer.
    """
    if state.state == "phase2":
        if not state.current_username or not state.current_domain:
            raise ProvisioningError(f"account {login} is in phase 2 without a phase-2 identity")
        return Line(
            login,
            state.state,
            state.current_username,
            state.current_domain,
            display_name,
            password or generated,
        )
    return Line(login, state.state, login, legacy_domain, display_name, password or None)
