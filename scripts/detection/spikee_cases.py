"""spikee's seeds (Apache-2.0) as labelled texts: each jailbreak template of the cybersec and
mailbox seed folders wrapped around attacker instructions, alone and inside spikee's own
sample documents. Templates and instructions written by others than this project.

The seeds are split by whole units, so the evaluation half tests wording never trained on:
- jailbreak templates by type (`dan`, `sorry`, `test`…, with their translations): of the
  types in sorted order, every second one is evaluation-only;
- instructions by unit (the id without its language suffix: `xss-02`, `long-01`…): every
  second unit in sorted order is evaluation-only.

usage: spikee_cases.py UNPACKED_SPIKEE_WHEEL OUT.jsonl eval|train

`eval` writes up to three evaluation instructions per evaluation template, alone
(`container: bare`) and in a sample document (`container: email`); `train` writes every
training template with every training instruction, alone and in a sample document, with
the attack's byte `span` (the format of corpus.py), and each document clean.
"""

import json
import pathlib
import random
import re
import sys

root = pathlib.Path(sys.argv[1]) / "spikee/data/workspace/datasets"
split = sys.argv[3]
assert split in ("eval", "train"), "split must be eval or train"
R = random.Random(7)
LANG = re.compile(r"-(zu|sq|ga|gd)$")


def jb_type(jb):
    return jb["jailbreak_type"]


def unit(ins):
    return LANG.sub("", ins["id"])


def is_eval(value, universe):
    return sorted(universe).index(value) % 2 == 1


folders = ("seeds-cybersec-2026-01", "seeds-llm-mailbox")
loaded = {}
for folder in folders:
    d = root / folder

    def read(name, d=d):
        return [json.loads(l) for l in open(d / name) if l.strip()]

    docs = [b["document"] for b in read("base_user_inputs.jsonl") if "<PLACEHOLDER>" not in b["document"]]
    loaded[folder] = (read("jailbreaks.jsonl"), read("instructions.jsonl"), docs)
types = {jb_type(j) for jbs, _, _ in loaded.values() for j in jbs}
units = {unit(i) for _, ins, _ in loaded.values() for i in ins}

rows, seen = [], set()
for folder in folders:
    jbs, ins, docs = loaded[folder]
    jbs = [j for j in jbs if is_eval(jb_type(j), types) == (split == "eval")]
    ins = [i for i in ins if is_eval(unit(i), units) == (split == "eval")]
    for jb in jbs:
        chosen = R.sample(ins, min(3, len(ins))) if split == "eval" else ins
        for inst in chosen:
            text = jb["text"].replace("<INSTRUCTION>", inst["instruction"])
            if text in seen:
                continue
            seen.add(text)
            fam = jb["jailbreak_type"]
            rows.append({"label": "malicious", "family": fam, "container": "bare", "text": text,
                         "span": [0, len(text.encode())]})
            if docs:
                doc = R.choice(docs)
                full = doc + "\n" + text
                start = len((doc + "\n").encode())
                rows.append({"label": "malicious", "family": fam, "container": "email", "text": full,
                             "span": [start, len(full.encode())]})
if split == "train":
    for folder in folders:
        for doc in loaded[folder][2]:
            rows.append({"label": "benign", "family": "clean_container", "container": "email", "text": doc})
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"spikee {split}: {sum(r['label'] == 'malicious' for r in rows)} attacks", file=sys.stderr)
