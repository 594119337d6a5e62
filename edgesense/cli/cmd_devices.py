"""``edgesense devices``: list the serial ports a sensing device could be on."""

from __future__ import annotations

import argparse

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("devices",)
HELP = "list serial ports (USB, UART, ACM) with a one-line description each"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true",
                        help="include ports without a hardware description (legacy /dev/ttyS*)")
    add_json_flag(parser)


def list_ports(include_all: bool = False) -> list[dict]:
    """Serial ports as dicts: device, description, hwid, vid, pid, serial_number, manufacturer."""
    from serial.tools import list_ports as lp

    out = []
    for port in sorted(lp.comports(include_links=False), key=lambda p: p.device):
        if not include_all and port.hwid in (None, "", "n/a"):
            continue
        out.append({
            "device": port.device,
            "description": port.description if port.description not in (None, "n/a") else "",
            "hwid": port.hwid or "",
            "vid": port.vid,
            "pid": port.pid,
            "serial_number": port.serial_number,
            "manufacturer": port.manufacturer,
        })
    return out


def run(args: argparse.Namespace) -> int:
    ports = list_ports(args.all)
    if args.json:
        print_json({"ports": ports})
        return 0
    if not ports:
        print("no serial ports found (use --all to include ports without hardware info; an emulated device: "
              "make -C firmware_bridge && firmware_bridge/build/esb_emulator --pty)")
        return 0
    for port in ports:
        description = port["description"] or "serial port"
        extra = f" [{port['hwid']}]" if port["hwid"] else ""
        print(f"{port['device']}  {description}{extra}")
    return 0
