#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run QEMU human-monitor commands on a monitor's UNIX socket and print their output.

    monitor.py SOCKET COMMAND...

The cross-architecture boots (scripts/launch/xvm.sh) give QEMU such a socket; a boot that is
about to time out, or whose console has been silent too long, has each vCPU's registers dumped
through it (`info registers -a`), so that a hang shows where each CPU was: in the kernel, or in
the firmware. A silent boot is then ended with `quit`.
"""

import socket
import sys
import time


def read_until_prompt(sock, timeout):
    """Read until the monitor prints its prompt again, or until TIMEOUT seconds pass."""
    out = b""
    end = time.monotonic() + timeout
    while not out.endswith(b"(qemu) ") and time.monotonic() < end:
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


def run(path, commands, timeout=10.0):
    """Return the output of each command of COMMANDS, in order."""
    outputs = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        read_until_prompt(sock, timeout)  # the banner
        for command in commands:
            sock.sendall(command.encode() + b"\n")
            text = read_until_prompt(sock, timeout).decode(errors="replace")
            # The monitor echoes the command (with terminal escapes) before its output.
            lines = text.replace("\r", "").split("\n")
            outputs.append("\n".join(line for line in lines[1:] if line != "(qemu) "))
    return outputs


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        for command, output in zip(argv[2:], run(argv[1], argv[2:])):
            print(f"(qemu) {command}\n{output}")
    except OSError as err:
        print(f"monitor.py: {argv[1]}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
