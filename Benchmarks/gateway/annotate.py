#!/usr/bin/env python3
"""Instructions per executed machine instruction of one function, from a callgrind profile
recorded with --dump-instr=yes (Benchmarks/gateway/callgrind.sh with
CALLGRIND_ARGS="--dump-instr=yes" CALLGRIND_DIR=folder): its disassembly (objdump) with each
instruction's count beside it, and the calls it makes with their inclusive costs. Callgrind's
own annotator needs line tables, which Debian's valgrind cannot read from the Swift toolchain's
DWARF 5.

    Benchmarks/gateway/annotate.py PROFILE BINARY FUNCTION-SUBSTRING [--per N]

--per N divides the counts by N (e.g. the requests of the window, for instructions per request).
"""
import re
import subprocess
import sys
from collections import defaultdict


def parse(path, want):
    """Self cost per address, and call costs per (address, callee), of functions matching `want`."""
    names = {}
    fn = None
    match = False
    costs = defaultdict(int)
    calls = defaultdict(int)
    last_addr = 0
    pending_call = None
    cfn = None
    positions = ["line"]
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("positions:"):
                positions = line.split()[1:]
                continue
            m = re.match(r"^(fn|cfn|cfi|cfl|fl|fi|fe|ob|cob)=(.*)$", line)
            if m:
                key, val = m.groups()
                nm = re.match(r"^\((\d+)\)(?: (.*))?$", val)
                if nm:
                    if nm.group(2) is not None:
                        names[(key in ("fn", "cfn")), nm.group(1)] = nm.group(2)
                    val = names.get(((key in ("fn", "cfn")), nm.group(1)), val)
                if key == "fn":
                    fn = val
                    match = want in fn
                elif key == "cfn":
                    cfn = val
                continue
            if line.startswith("calls="):
                pending_call = cfn
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            n = len(positions)
            addr_s = parts[0]
            if addr_s.startswith("+"):
                addr = last_addr + int(addr_s[1:], 16 if addr_s[1:].startswith("0x") else 10)
            elif addr_s.startswith("-"):
                addr = last_addr - int(addr_s[1:], 16 if addr_s[1:].startswith("0x") else 10)
            elif addr_s == "*":
                addr = last_addr
            else:
                addr = int(addr_s, 16) if addr_s.startswith("0x") else int(addr_s)
            last_addr = addr
            cost = int(parts[n]) if len(parts) > n else 0
            if pending_call is not None:
                if match:
                    calls[(addr, pending_call)] += cost
                pending_call = None
            elif match:
                costs[addr] += cost
    return costs, calls


def main():
    args = sys.argv[1:]
    per = 1
    if "--per" in args:
        i = args.index("--per")
        per = int(args[i + 1])
        del args[i:i + 2]
    profile, binary, want = args
    costs, calls = parse(profile, want)
    if not costs:
        sys.exit(f"no function matching {want!r} has costs in {profile}")
    sym = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    syms = [l.split()[2] for l in sym.splitlines() if len(l.split()) == 3 and want in l.split()[2]]
    total = sum(costs.values())
    print(f"self {total / per:.1f}, calls {sum(calls.values()) / per:.1f} (per {per})")
    for s in syms[:3]:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={s}", binary], capture_output=True, text=True).stdout
        for l in out.splitlines():
            m = re.match(r"^\s*([0-9a-f]+):\s*(.*)$", l)
            if not m:
                continue
            a = int(m.group(1), 16)
            c = costs.get(a, 0)
            callc = sum(v for (ca, _), v in calls.items() if ca == a)
            mark = f"{c / per:8.2f}" if c else " " * 8
            extra = f"   [call {callc / per:.1f}]" if callc else ""
            print(f"{mark}  {a:x}: {m.group(2)}{extra}")


main()
