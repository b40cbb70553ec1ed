"""Golden files of every vendor template, and each file checked against the keys the vendor
documents for a SIP line and for provisioning.

The expected output is committed under tests/unit/golden/provisioning/<vendor>/. After an
intended template change: SIPWAVE_UPDATE_GOLDEN=1 pytest tests/unit/test_provisioning_templates.py
and review the diff of the golden files.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    VENDOR_FILES,
    DeviceConfig,
    Line,
    Renderer,
)

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "roles" / "provisioning" / "templates" / "phones"
GOLDEN = Path(__file__).parent / "golden" / "provisioning"
SITE = {
    "provisioning_url": "https://prov.sipwave.test",
    "sip_server": "proxy.sipwave.test",
    "sip_port": 5060,
    "sip_transport": "udp",
    "ntp_server": "ntp.sipwave.test",
    "resync_minutes": 1440,
}
TOKEN = "0123456789abcdef0123456789abcdef"
PASSWORD = "pw-golden&<secret>"  # XML-special characters must come out escaped
CASES = {
    # phase 1: legacy login, domain and password
    "phase1": Line("481200000", "phase1", "481200000", "ip.tanifon.pl", "Anna Nowak", PASSWORD),
    # phase 2: prefixed login on the new domain
    "phase2": Line("481200000", "phase2", "tnf481200000", "sip.sipwave.test", "Anna Nowak",
                   PASSWORD),
    # phase 1 of an account whose export only has an HA1: the password is left out
    "ha1only": Line("481200006", "phase1", "481200006", "ip.tanifon.pl", "Łucja Wójcik", None),
}  # fmt: skip
MAC = "0015651a2b3c"


def load_templates() -> dict[str, str]:
    return {
        path.relative_to(TEMPLATES).as_posix(): path.read_text(encoding="utf-8")
        for path in TEMPLATES.rglob("*.j2")
    }


def render(vendor: str, case: str) -> list[tuple[str, bytes]]:
    renderer = Renderer(load_templates(), SITE, "/nonexistent")
    device = DeviceConfig(MAC, vendor, "T46U", TOKEN, CASES[case])
    return renderer.render_device(device)


PARAMS = [(vendor, case) for vendor in sorted(VENDOR_FILES) for case in sorted(CASES)]


@pytest.mark.parametrize(("vendor", "case"), PARAMS)
def test_rendered_files_match_the_golden_files(vendor, case):
    for name, content in render(vendor, case):
        golden = GOLDEN / vendor / case / name
        if os.environ.get("SIPWAVE_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(content)
        assert golden.exists(), f"no golden file {golden.relative_to(PROJECT)}"
        assert content.decode() == golden.read_text(encoding="utf-8")


# -- the vendors' documented keys ---------------------------------------------------------------
# Per vendor: how to read the keys of a file, and the keys its documentation gives for
# the first SIP line (user, auth, password, server) and for the provisioning server.
# Sources: Yealink "Auto Provisioning Guide" (account.X.*, static.auto_provision.*);
# Poly "UC Software Administrator Guide" (reg.x.*, device.prov.*); Grandstream
# "Configuration File Guide" / P-value list (P271, P47, P35, P36, P34, P3, P212, P237);
# Snom "Desk Phone Configuration Files" (user_name, user_pass, user_host, setting_server);
# Cisco "Provisioning Guide" for SPA/MPP 3PCC (Proxy_1_, User_ID_1_, Password_1_,
# Profile_Rule); Fanvil "Auto Provision" config file (SIP1 Register User/Pswd/Addr);
# Gigaset "Provisioning of N510/N720 IP PRO" (BS_IP_Data1.aucS_SIP_* SYMB_ITEM IDs).


def yealink_keys(text: str) -> set[str]:
    assert text.startswith("#!version:1.0.0.1\n")  # the phones reject a file without it
    return {line.split("=", 1)[0].strip() for line in text.splitlines() if "=" in line
            and not line.startswith("#")}  # fmt: skip


def polycom_keys(text: str) -> set[str]:
    root = ET.fromstring(text)
    if root.tag == "APPLICATION":
        return {f"APPLICATION.{name}" for name in root.attrib}
    assert root.tag == "polycomConfig"
    return {name for element in root.iter() for name in element.attrib}


def grandstream_keys(text: str) -> set[str]:
    root = ET.fromstring(text)
    assert root.tag == "gs_provision"
    assert re.fullmatch(r"[0-9a-f]{12}", root.findtext("mac"))
    return {element.tag for element in root.find("config")}


def snom_keys(text: str) -> set[str]:
    root = ET.fromstring(text)
    assert root.tag == "settings"
    return {element.tag for element in root.find("phone-settings")}


def cisco_keys(text: str) -> set[str]:
    root = ET.fromstring(text)
    assert root.tag == "flat-profile"
    return {element.tag for element in root}


def fanvil_keys(text: str) -> set[str]:
    lines = text.splitlines()
    assert lines[0].startswith("<<VOIP CONFIG FILE>>Version:")
    assert lines[-1] == "<<END OF FILE>>"
    return {line.split(":", 1)[0].strip() for line in lines[1:-1] if ":" in line
            and not line.startswith("<")}  # fmt: skip


def gigaset_keys(text: str) -> set[str]:
    root = ET.fromstring(text)
    assert root.tag == "ProviderFrame"
    return {item.get("ID") for item in root.iter("SYMB_ITEM")}


READERS = {
    "yealink": yealink_keys,
    "polycom": polycom_keys,
    "grandstream": grandstream_keys,
    "snom": snom_keys,
    "cisco": cisco_keys,
    "fanvil": fanvil_keys,
    "gigaset": gigaset_keys,
}
DOCUMENTED = {
    "yealink": {"account.1.enable", "account.1.user_name", "account.1.auth_name",
                "account.1.password", "account.1.sip_server.1.address",
                "account.1.sip_server.1.port", "static.auto_provision.server.url"},
    "polycom": {"APPLICATION.CONFIG_FILES", "reg.1.address", "reg.1.auth.userId",
                "reg.1.auth.password", "reg.1.server.1.address", "device.prov.serverName"},
    "grandstream": {"P271", "P47", "P35", "P36", "P34", "P3", "P212", "P237"},
    "snom": {"user_name", "user_pass", "user_host", "user_realname", "setting_server"},
    "cisco": {"Proxy_1_", "User_ID_1_", "Auth_ID_1_", "Password_1_", "Display_Name_1_",
              "Profile_Rule", "Resync_From_SIP"},
    "fanvil": {"SIP1 Phone Number", "SIP1 Register Addr", "SIP1 Register User",
               "SIP1 Register Pswd", "SIP1 Enable Reg", "Config Server Path"},
    "gigaset": {"BS_IP_Data1.aucS_SIP_USER_ID_1", "BS_IP_Data3.aucS_SIP_LOGIN_ID_1",
                "BS_IP_Data1.aucS_SIP_PASSWORD_1", "BS_IP_Data1.aucS_SIP_DOMAIN_1",
                "BS_IP_Data1.aucS_SIP_SERVER_1"},
}  # fmt: skip
PASSWORD_KEYS = {
    "yealink": "account.1.password",
    "polycom": "reg.1.auth.password",
    "grandstream": "P34",
    "snom": "user_pass",
    "cisco": "Password_1_",
    "fanvil": "SIP1 Register Pswd",
    "gigaset": "BS_IP_Data1.aucS_SIP_PASSWORD_1",
}


def keys_of(vendor: str, case: str) -> set[str]:
    return set().union(*(READERS[vendor](content.decode()) for _, content in render(vendor, case)))


@pytest.mark.parametrize("vendor", sorted(VENDOR_FILES))
def test_every_documented_key_is_set(vendor):
    assert DOCUMENTED[vendor] <= keys_of(vendor, "phase1")


@pytest.mark.parametrize("vendor", sorted(VENDOR_FILES))
def test_a_file_without_a_known_password_leaves_the_password_key_out(vendor):
    keys = keys_of(vendor, "ha1only")
    assert PASSWORD_KEYS[vendor] not in keys
    assert DOCUMENTED[vendor] - {PASSWORD_KEYS[vendor]} <= keys


@pytest.mark.parametrize("vendor", sorted(VENDOR_FILES))
def test_phase2_files_carry_the_new_login_and_domain(vendor):
    text = b"".join(content for _, content in render(vendor, "phase2")).decode()
    assert "tnf481200000" in text
    assert "sip.sipwave.test" in text
    assert "ip.tanifon.pl" not in text


@pytest.mark.parametrize("vendor", sorted(VENDOR_FILES))
def test_the_provisioning_url_holds_the_device_token(vendor):
    text = b"".join(content for _, content in render(vendor, "phase1")).decode()
    assert f"/p/{TOKEN}/" in text


def test_file_names_are_those_the_phones_request():
    names = {vendor: [name for name, _ in render(vendor, "phase1")] for vendor in VENDOR_FILES}
    assert names == {
        "yealink": ["0015651a2b3c.cfg"],
        "polycom": ["0015651a2b3c.cfg", "0015651a2b3c-phone.cfg"],
        "grandstream": ["cfg0015651a2b3c.xml"],
        "snom": ["0015651A2B3C.xml"],
        "cisco": ["0015651a2b3c.xml"],
        "fanvil": ["0015651a2b3c.cfg"],
        "gigaset": ["0015651A2B3C.xml"],
    }


# -- hostile export values ----------------------------------------------------------------------
# A device model and a name as a hostile export row (or a site's own data) might carry them:
# a line break and a key of their own, and an XML comment end. The export reader refuses such
# rows; the templates must not depend on that.
HOSTILE_MODEL = "T46U\nstatic.auto_provision.server.url = http://attacker.invalid/\r\n-->\x01"
HOSTILE_NAME = "Anna\naccount.1.sip_server.1.address = attacker.invalid"
HOSTILE_LINE = Line("481200000", "phase1", "481200000", "ip.tanifon.pl", HOSTILE_NAME, PASSWORD)


def render_hostile(vendor: str) -> list[tuple[str, bytes]]:
    renderer = Renderer(load_templates(), SITE, "/nonexistent")
    return renderer.render_device(DeviceConfig(MAC, vendor, HOSTILE_MODEL, TOKEN, HOSTILE_LINE))


def test_a_yealink_model_with_a_line_break_adds_no_config_key():
    (name, content), = render_hostile("yealink")  # fmt: skip
    golden = GOLDEN / "yealink" / "hostile" / name
    if os.environ.get("SIPWAVE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(content)
    text = content.decode()
    assert text == golden.read_text(encoding="utf-8")
    assert yealink_keys(text) == keys_of("yealink", "phase1")
    assert "attacker.invalid" not in "".join(
        line for line in text.splitlines() if line.startswith(("static.", "account.1.sip_server"))
    )


@pytest.mark.parametrize("vendor", sorted(VENDOR_FILES))
def test_hostile_values_change_no_vendors_keys(vendor):
    files = render_hostile(vendor)
    keys = set().union(*(READERS[vendor](content.decode()) for _, content in files))
    assert keys == keys_of(vendor, "phase1")
    for _, content in files:
        assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", content)
