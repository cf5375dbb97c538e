"""Scores `gatehouse detect` on labelled JSON-lines sets and prints recall and
false-positive rates per dataset, attack family and container type.

usage: evaluate.py GATEHOUSE_BIN [--config FILE] NAME=FILE[:kind] ...

Each FILE holds lines with `label` (malicious or poisoned | benign), `family`, optional `container`, and
`text` (kind result, the default) or `tool` (kind description). A text counts as caught at
the action level when the gateway would act on it (redact, withhold, block, approve,
quarantine), and at the finding level when any finding is recorded.
"""

import collections
import json
import subprocess
import sys

ACT = {"redact", "withhold", "block", "approve", "quarantine"}


def run(binary, config, kind, rows):
    cmd = [binary, "detect", "--kind", kind] + (["--config", config] if config else [])
    inp = "".join(json.dumps({"index": i, ("tool" if kind == "description" else "text"):
                              r["tool" if kind == "description" else "text"]}) + "\n"
                  for i, r in enumerate(rows))
    out = subprocess.run(cmd, input=inp, capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        v = json.loads(line)
        res[v["index"]] = v
    return [res[i] for i in range(len(rows))]


def pct(a, b):
    return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "    -"


def table(title, groups):
    print(f"\n{title}")
    print(f"  {'group':<34} {'n':>5}  {'action level':>18}  {'any finding':>18}")
    for k in sorted(groups):
        n, act, anyf = groups[k]
        print(f"  {k:<34} {n:>5}  {pct(act, n):>18}  {pct(anyf, n):>18}")


def main():
    args = sys.argv[1:]
    binary, config = args.pop(0), None
    if args and args[0] == "--config":
        config = args[1]
        args = args[2:]
    totals = collections.defaultdict(lambda: [0, 0, 0])
    for spec in args:
        name, path = spec.split("=", 1)
        kind = "result"
        if ":" in path:
            path, kind = path.rsplit(":", 1)
        rows = [json.loads(l) for l in open(path) if l.strip()]
        outs = run(binary, config, kind, rows)
        pos = collections.defaultdict(lambda: [0, 0, 0])
        neg = collections.defaultdict(lambda: [0, 0, 0])
        for r, o in zip(rows, outs):
            acted = o.get("action") in ACT
            found = bool(o.get("findings"))
            mal = r["label"] in ("malicious", "poisoned")
            keys = [f"family {r.get('family', '?')}"]
            if r.get("container"):
                keys.append(f"container {r['container']}")
            keys.append("ALL")
            for k in keys:
                g = (pos if mal else neg)[k]
                g[0] += 1
                g[1] += acted
                g[2] += found
            t = totals[("recall" if mal else "false positives")]
            t[0] += 1
            t[1] += acted
            t[2] += found
        print(f"\n=== {name} ({path}, kind {kind}) ===")
        table("recall (attacks caught)", pos)
        table("false-positive rate (benign texts acted on)", neg)
    print("\n=== all sets ===")
    for k, (n, a, f) in sorted(totals.items()):
        print(f"  {k:<20} n={n:<6} action level {pct(a, n)}   any finding {pct(f, n)}")


main()
