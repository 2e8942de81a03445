#!/usr/bin/env python3
"""Instructions per ingested event, counted by valgrind (callgrind): a figure
that does not move with the machine's noise, for comparing builds.

    python3 bench/instructions.py [--bin target/release/larkgate] [--count 5000]
                                  [--rate 0] [--keep]

Starts lark-emulator, then `larkgate run` under `valgrind --tool=callgrind`
(group messages without a mention, as in the ingest benchmark), zeroes the
counters once it is ready, pushes --count events (--rate 0 = as fast as it
acks), dumps the counters and prints the user-space instructions of every
larkgate thread divided by the events. Kernel time (syscalls, wake-ups) is
not counted: the ingest benchmark measures that. Needs valgrind
(`apt-get install valgrind`) and the release binaries. --keep leaves the
callgrind output for `callgrind_annotate --inclusive=yes`.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=bench.LARKGATE_BIN, help="larkgate binary to measure")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the callgrind output")
    args = p.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="larkgate-instructions-")
    wrapper = os.path.join(work, "larkgate-under-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind "
                f"--callgrind-out-file={work}/callgrind.%p.out {os.path.abspath(args.bin)} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    bench.LARKGATE_BIN = wrapper
    emu = bench.Emulator(work)
    lg = None
    try:
        app = emu.create_app("instructions")
        lg = bench.Larkgate(emu, [app], agent="echo", label="instructions")
        emu.wait_connections(app["app_id"], 1, 120, lg.proc)
        lg.wait_ready(120, 0.05)
        subprocess.run(["callgrind_control", "-z", str(lg.pid)], capture_output=True, check=True)
        result = emu.post("/_emulator/bench/push", {"app_id": app["app_id"], "count": args.count,
                                                    "rate": args.rate, "chats": 50, "timeout_secs": 600})
        time.sleep(1)
        subprocess.run(["callgrind_control", "-d", str(lg.pid)], capture_output=True, check=True)
        time.sleep(1)
        dumps = sorted(glob.glob(f"{work}/callgrind.{lg.pid}.out.*"), key=os.path.getmtime)
        if not dumps:
            print("instructions: callgrind wrote no dump", file=sys.stderr)
            return 1
        total = 0
        with open(dumps[-1]) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        acked = result.get("acked", 0)
        print(json.dumps({"events": args.count, "acked": acked, "refused": result.get("refused"),
                          "instructions": total,
                          "instructions_per_event": round(total / max(acked, 1)),
                          "callgrind_out": dumps[-1] if args.keep else None}))
        return 0
    finally:
        if lg is not None:
            lg.stop()
        emu.proc.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
