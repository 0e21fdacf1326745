#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Hostile input to rnull's configfs attributes, while I/O runs (guest.sh on x86_64,
rnull-failure.sh on riscv64-kasan).

  rnull_fuzz.py CFGDIR NAME SEED WRITES

Creates the device NAME under CFGDIR (/sys/kernel/config/rnull) and writes generated values
to every attribute: empty strings, values at and beyond the u32/u64 limits, negative numbers,
leading and trailing garbage, random bytes, writes longer than a page, booleans and near
misses. The values come from random.Random(SEED): the same seed replays the same writes.

1. One writer: each write is checked against what the attribute accepts (an oracle of the
   parsing in drivers/block/rnull/configfs.rs): a valid value is taken and reads back
   normalised, an invalid one fails with its error code (EINVAL, or EBUSY for a setting that
   cannot change while powered; configfs itself fails an empty write with EFAULT) and changes
   nothing.
2. Two writers at once: every write succeeds or fails with EINVAL or EBUSY.
Direct I/O and reads of the stats attribute run throughout. Then, quiet: the per-CPU sums of
the statistics equal their totals; power off and removal work.

Prints "case NAME pass|fail" lines for guest.sh, and "log ..." lines; exits 0.
"""

import errno
import os
import random
import re
import subprocess
import sys
import threading
import time

BOOLS = ("power", "rotational", "position_stats", "stats_enabled")
# Attributes that refuse a change while the device is powered, and whether the value is
# parsed before that test (stats_enabled) or after (the others).
BUSY = {"blocksize": "first", "size": "first", "irqmode": "first", "rotational": "first",
        "stats_enabled": "after"}
ATTRS = ("power", "blocksize", "size", "rotational", "irqmode", "inflight_limit",
         "position_stats", "stats_enabled", "stats")
LIMITS = {"blocksize": 2**32 - 1, "size": 2**64 - 1, "irqmode": 255, "inflight_limit": 2**32 - 1}
# Rust's char::is_whitespace() for the characters a value can hold (str::trim()).
RUST_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
          "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
PAGE = 4096


def out(*a):
    print(*a, flush=True)


def kstrtobool(b):
    """lib/kstrtox.c on the first two bytes (kstrtobool_bytes())."""
    c0 = b[:1]
    c1 = b[1:2]
    if c0 and c0 in b"eEyYtT1":
        return True
    if c0 and c0 in b"dDnNfF0":
        return False
    if c0 and c0 in b"oO":
        if c1 and c1 in b"nN":
            return True
        if c1 and c1 in b"fF":
            return False
    return None


def parse_uint(b, limit):
    """Rust: str::from_utf8()?.trim().parse::<uN>()."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    s = s.strip(RUST_WS)
    if not re.fullmatch(r"\+?[0-9]+", s, re.ASCII):
        return None
    v = int(s)
    return v if v <= limit else None


def expect(attr, b, powered):
    """(errno or 0, normalised value read back after success) for one write."""
    if attr == "stats":
        return errno.EACCES, None
    if not b:
        return errno.EFAULT, None  # configfs: an empty write copies nothing
    b = b[:PAGE - 1]  # configfs passes at most 4095 bytes per write
    if BUSY.get(attr) == "first" and powered:
        return errno.EBUSY, None
    if attr in BOOLS:
        v = kstrtobool(b)
        if v is None:
            return errno.EINVAL, None
        v = "1" if v else "0"
    else:
        v = parse_uint(b, LIMITS[attr])
        if v is None or (attr == "blocksize" and (v < 512 or v > PAGE or v & (v - 1))):
            return errno.EINVAL, None
        if attr == "irqmode" and v > 1:
            return errno.EINVAL, None
        v = str(v)
    if BUSY.get(attr) == "after" and powered:
        return errno.EBUSY, None
    return 0, v


def value(rng):
    """One hostile value."""
    k = rng.randrange(12)
    if k == 0:
        return b""
    if k == 1:
        return str(rng.choice([0, 1, 2, 512, 1024, 4096, 16, 64, rng.randrange(10**6)])).encode()
    if k == 2:
        return rng.choice([b"4294967295", b"4294967296", b"18446744073709551615",
                           b"18446744073709551616", b"99999999999999999999999"])
    if k == 3:
        return rng.choice([b"-1", b"-0", b"-4294967296", b"--1", b"+-1"])
    if k == 4:
        return rng.choice([b"x", b" ", b"\t", b"+", b"0x", b"\n"]) + str(rng.randrange(9)).encode()
    if k == 5:
        return str(rng.randrange(4097)).encode() + rng.choice([b"x", b" ", b"\n\n", b" 2", b"\x00"])
    if k == 6:
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 17)))
    if k == 7:
        n = rng.choice([PAGE - 1, PAGE, PAGE + 1, 3 * PAGE])
        return rng.choice([b"1", b"y", b"9", b" "]) * n
    if k == 8:
        return rng.choice([b"y", b"n", b"on", b"off", b"of", b"o", b"true", b"false", b"yes",
                           b"maybe", b"enable", b"disable", b"ON", b"Oops", b"1\n", b"0\n"])
    if k == 9:
        return rng.choice([b"512", b"4096", b"1", b"0", b"16", b"8192", b"511", b"3"]) + b"\n"
    if k == 10:
        return bytes([rng.randrange(0x80, 0x100)]) + str(rng.randrange(9)).encode()
    return b"\xc2\x85" + str(rng.randrange(1, 9)).encode()  # U+0085 is whitespace for Rust


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace").strip()


def write(path, b):
    """Writes b in one write() call; returns 0 or the errno."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, b)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def state(d):
    return {a: read(f"{d}/{a}") for a in ATTRS if a != "stats"}


def one_checked_write(d, rng):
    """One write with the oracle; returns a problem or None."""
    attr = rng.choice(ATTRS)
    b = value(rng)
    before = state(d)
    want, v = expect(attr, b, before["power"] == "1")
    got = write(f"{d}/{attr}", b)
    after = state(d)
    what = f"{attr} <- {b[:40]!r}{'...' if len(b) > 40 else ''} (powered {before['power']})"
    if attr == "stats":
        return None if got and after == before else f"{what}: error {got}, state {after}"
    if got != want:
        return f"{what}: error {got}, expected {want}"
    if got:
        return None if after == before else f"{what}: refused but changed {before} -> {after}"
    if after[attr] != v:
        return f"{what}: reads {after[attr]!r}, expected {v!r}"
    others = {a: x for a, x in after.items() if a != attr}
    if others != {a: x for a, x in before.items() if a != attr}:
        return f"{what}: changed other attributes {before} -> {after}"
    return None


def single_writer(d, seed, n):
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        p = one_checked_write(d, rng)
        if p:
            problems.append(p)
    for p in problems[:5]:
        out(f"log rnull fuzz: {p}")
    return problems


def concurrent_writer(d, seed, n, problems):
    rng = random.Random(seed)
    for _ in range(n):
        attr = rng.choice(ATTRS)
        b = value(rng)
        got = write(f"{d}/{attr}", b)
        if attr == "stats" and not got:
            problems.append("stats: write accepted")
        elif attr != "stats" and got not in (0, errno.EINVAL, errno.EBUSY, errno.EFAULT):
            problems.append(f"{attr} <- {b[:40]!r}: error {got}")


def dd(args, to=None):
    """dd 32 x 4 KiB; to a disk through a descriptor opened without O_CREAT, so that a disk
    powered off meanwhile fails the write instead of becoming a regular file in /dev. oflag=direct
    makes dd align its buffer as O_DIRECT requires (busybox's dd does only when told)."""
    try:
        out = os.open(f"/dev/{to}", os.O_WRONLY | os.O_DIRECT) if to else None
    except OSError:
        return False
    try:
        args = args + ["oflag=direct"] if to else args
        r = subprocess.run(["dd", "bs=4k", "count=32", "status=none"] + args,
                           stdout=out if to else subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0
    finally:
        if to:
            os.close(out)


def io_loop(name, d, stop, counts):
    """Direct reads and writes of the device while it exists, and reads of stats."""
    while not stop.is_set():
        try:
            read(f"{d}/stats")
            counts["stats"] += 1
        except OSError:
            counts["stats_errors"] += 1
        if read(f"{d}/power") == "1" and os.path.exists(f"/dev/{name}"):
            counts["io" if dd(["if=/dev/" + name, "iflag=direct"]) else "io_errors"] += 1
            counts["io" if dd(["if=/dev/zero"], name) else "io_errors"] += 1
        else:
            time.sleep(0.01)


def stats_consistent(d):
    """Per-CPU sums equal the totals (I/O quiet); returns a problem or None."""
    total, cpus = {}, {}
    for line in read(f"{d}/stats").splitlines():
        w = line.split()
        if len(w) == 2:
            total[w[0]] = int(w[1])
        elif len(w) == 3 and w[0].startswith("cpu"):
            cpus[w[1]] = cpus.get(w[1], 0) + int(w[2])
    for f in ("read_ops", "read_bytes", "write_ops", "write_bytes"):
        if f not in total or cpus.get(f, 0) != total[f]:
            return f"{f}: total {total.get(f)}, per-CPU sum {cpus.get(f)}"
    return None


def main():
    cfg, name, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    d = f"{cfg}/{name}"
    os.mkdir(d)
    for a, v in (("size", b"16"), ("blocksize", b"4096"), ("power", b"1")):
        write(f"{d}/{a}", v)
    out(f"log rnull fuzz: seed {seed}, {n} checked writes, then 2 x {n // 4} concurrent")
    stop, counts = threading.Event(), {"stats": 0, "stats_errors": 0, "io": 0, "io_errors": 0}
    io = threading.Thread(target=io_loop, args=(name, d, stop, counts))
    io.start()
    problems = single_writer(d, seed, n)
    out(f"case rnull_fuzz_checked_writes {'fail' if problems else 'pass'}")
    out(f"log rnull fuzz: {len(problems)} of {n} checked writes wrong")
    cproblems = []
    writers = [threading.Thread(target=concurrent_writer, args=(d, seed + i, n // 4, cproblems))
               for i in (1, 2)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    io.join()
    for p in cproblems[:5]:
        out(f"log rnull fuzz: {p}")
    out(f"case rnull_fuzz_concurrent_writers {'fail' if cproblems else 'pass'}")
    out(f"log rnull fuzz: I/O {counts['io']} runs ({counts['io_errors']} failed, device off "
        f"or refusing), stats read {counts['stats']} times ({counts['stats_errors']} failed)")
    ok = counts["stats_errors"] == 0 and counts["io"] > 0
    for a, v in (("power", b"0"), ("size", b"16"), ("blocksize", b"4096"), ("irqmode", b"0"),
                 ("inflight_limit", b"0"), ("stats_enabled", b"1"), ("power", b"1")):
        ok = write(f"{d}/{a}", v) == 0 and ok
    ok = dd(["if=/dev/zero"], name) and dd([f"if=/dev/{name}", "iflag=direct"]) and ok
    p = stats_consistent(d)
    if p:
        out(f"log rnull fuzz: stats after quiet I/O: {p}")
    out(f"case rnull_fuzz_device_works_stats_consistent {'pass' if ok and not p else 'fail'}")
    ok = write(f"{d}/power", b"0") == 0 and not os.path.exists(f"/sys/block/{name}")
    os.rmdir(d)
    out(f"case rnull_fuzz_teardown {'pass' if ok and not os.path.exists(d) else 'fail'}")


if __name__ == "__main__":
    main()
