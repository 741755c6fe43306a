#!/usr/bin/python3
"""Count test results for `make check`.

  tally.py unit OUTFILE PROG...   run cmocka programs, echo their output,
                                  write "passed failed" to OUTFILE
  tally.py summary DIR            add up every DIR/* file, print the one
                                  final line "N passed, M failed", exit 1
                                  on any failure or a missing stage
"""
import os
import re
import subprocess
import sys

STAGES = ["templates", "unit", "unit-asan", "fuzz", "e2e", "e2e-asan"]


def run_units(name, outfile, progs):
    passed = failed = 0
    for prog in progs:
        p = subprocess.run([prog], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=600)
        sys.stdout.write(p.stdout)
        ok = len(re.findall(r"^\[       OK \] ", p.stdout, re.M))
        bad = {m for m in re.findall(r"^\[  FAILED  \] (\S+)$", p.stdout, re.M)}
        passed += ok
        failed += len(bad)
        if p.returncode != 0 and not bad:
            # crashed, or a sanitizer stopped it: that is a failure too
            print(f"FAIL {os.path.basename(prog)}: exit status {p.returncode}")
            failed += 1
    os.makedirs(os.path.dirname(outfile), exist_ok=True)
    with open(outfile, "w") as f:
        f.write(f"{passed} {failed}\n")
    print(f"{name}: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def summary(d):
    passed = failed = 0
    for stage in STAGES:
        path = os.path.join(d, stage)
        try:
            with open(path) as f:
                p, fl = (int(x) for x in f.read().split()[:2])
        except (OSError, ValueError):
            print(f"FAIL {stage}: no results (the stage did not run to the end)")
            failed += 1
            continue
        passed += p
        failed += fl
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "summary":
        sys.exit(summary(sys.argv[2]))
    if len(sys.argv) >= 3:
        sys.exit(run_units(sys.argv[1], sys.argv[2], sys.argv[3:]))
    print(__doc__)
    sys.exit(2)
