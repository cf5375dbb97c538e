"""An evaluation set from spikee's seeds (Apache-2.0): each jailbreak template of the
cybersec and mailbox seed folders wrapped around each attacker instruction, alone and
inside spikee's own sample email. Templates written by others than this project, so a
test of how far detection generalises. Never trained on.

usage: spikee_cases.py UNPACKED_SPIKEE_WHEEL OUT.jsonl
"""

import json
import pathlib
import random
import sys

root = pathlib.Path(sys.argv[1]) / "spikee/data/workspace/datasets"
R = random.Random(7)
rows, seen = [], set()
for folder in ("seeds-cybersec-2026-01", "seeds-llm-mailbox"):
    d = root / folder

    def read(name):
        return [json.loads(l) for l in open(d / name) if l.strip()]

    jbs, ins = read("jailbreaks.jsonl"), read("instructions.jsonl")
    docs = [b["document"] for b in read("base_user_inputs.jsonl") if "<PLACEHOLDER>" not in b["document"]]
    for jb in jbs:
        for inst in R.sample(ins, min(3, len(ins))):
            text = jb["text"].replace("<INSTRUCTION>", inst["instruction"])
            if text in seen:
                continue
            seen.add(text)
            rows.append({"label": "malicious", "family": jb["jailbreak_type"], "container": "bare", "text": text})
            if docs:
                doc = R.choice(docs)
                rows.append({"label": "malicious", "family": jb["jailbreak_type"], "container": "email",
                             "text": doc + "\n" + text})
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
