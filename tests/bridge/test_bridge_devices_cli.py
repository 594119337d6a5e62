"""``edgesense devices``: one line per port, JSON for scripts."""

import json

from serial.tools.list_ports_common import ListPortInfo

from edgesense.cli import cmd_devices
from edgesense.cli.main import main


def fake_ports():
    usb = ListPortInfo("/dev/ttyACM0")
    usb.description = "AD60 radar bridge"
    usb.hwid = "USB VID:PID=1234:5678 SER=42"
    usb.vid, usb.pid, usb.serial_number = 0x1234, 0x5678, "42"
    legacy = ListPortInfo("/dev/ttyS0")
    legacy.hwid = "n/a"
    return [legacy, usb]


def test_lists_ports_with_descriptions(monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda include_links=False: fake_ports())
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["/dev/ttyACM0  AD60 radar bridge [USB VID:PID=1234:5678 SER=42]"]
    assert main(["devices", "--all", "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)["ports"]
    assert [p["device"] for p in ports] == ["/dev/ttyACM0", "/dev/ttyS0"]
    assert ports[0]["vid"] == 0x1234 and ports[0]["serial_number"] == "42"


def test_no_ports(monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda include_links=False: [])
    assert main(["devices"]) == 0
    assert "no serial ports found" in capsys.readouterr().out
    assert cmd_devices.list_ports() == []
