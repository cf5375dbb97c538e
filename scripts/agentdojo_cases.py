"""Builds the AgentDojo evaluation set for `bench detect` from an unpacked agentdojo wheel.

AgentDojo is reserved for evaluation: nothing here is used to write rules or to train.

usage: agentdojo_cases.py UNPACKED_WHEEL_DIR OUT.jsonl

Injections: each v1 suite's injection-task goals, wrapped by AgentDojo's attacks (direct,
ignore_previous, system_message, injecagent, important_instructions), put where the suite's
environment data has an injection placeholder (the line a tool would return). Benign: the
suites' environment data (what its tools return: emails, calendar events, files, reviews,
transactions, channel messages) in pieces of 20 lines, placeholders removed. Standard
library only: the Python sources are read with `ast`, never imported.
"""

import ast
import json
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1]) / "agentdojo"
out = pathlib.Path(sys.argv[2])
SUITES = ["banking", "slack", "travel", "workspace"]
PLACEHOLDER = re.compile(r"\{injection_[a-z0-9_]+\}")


def goals(path: pathlib.Path) -> list[str]:
    """Each injection task's GOAL, its f-string filled from the class's constants."""
    found = []
    for cls in ast.parse(path.read_text()).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        consts: dict[str, str] = {}
        goal = None
        for node in cls.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, (str, int, float)):
                    consts[name] = str(node.value.value)
                elif name == "GOAL":
                    goal = node.value
        if goal is None:
            continue

        def render(v: ast.AST) -> str | None:
            if isinstance(v, ast.Constant):
                return str(v.value)
            if isinstance(v, ast.JoinedStr):
                parts = []
                for p in v.values:
                    if isinstance(p, ast.Constant):
                        parts.append(str(p.value))
                    elif isinstance(p, ast.FormattedValue) and isinstance(p.value, ast.Name) and p.value.id in consts:
                        parts.append(consts[p.value.id])
                    else:
                        return None
                return "".join(parts)
            if isinstance(v, ast.BinOp) and isinstance(v.op, ast.Add):
                a, b = render(v.left), render(v.right)
                return None if a is None or b is None else a + b
            return None

        g = render(goal)
        if g:
            found.append(g)
    return found


def attacks() -> dict[str, str]:
    """Attack templates by name, from AgentDojo's attack classes."""
    out: dict[str, str] = {}
    for f in ["baseline_attacks.py", "important_instructions_attacks.py"]:
        for cls in ast.parse((root / "attacks" / f).read_text()).body:
            if not isinstance(cls, ast.ClassDef):
                continue
            name = template = None
            for node in ast.walk(cls):
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    if node.targets[0].id == "name" and isinstance(node.value, ast.Constant):
                        name = node.value.value
                    if node.targets[0].id == "_JB_STRING":
                        template = ast.literal_eval(node.value)
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "__init__"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    template = node.args[0].value
            if name in {"direct", "ignore_previous", "system_message", "injecagent", "important_instructions"} and template:
                out[name] = template
    return out


def main() -> None:
    templates = attacks()
    rows = []
    for suite in SUITES:
        data = sorted((root / "data" / "suites" / suite).rglob("*.yaml"))
        lines = [(f, l) for f in data for l in f.read_text().splitlines()]
        slots = [l for _, l in lines if PLACEHOLDER.search(l)]
        # Benign: what the tools return, placeholders removed.
        for f in data:
            text = f.read_text().splitlines()
            for i in range(0, len(text), 20):
                piece = "\n".join(PLACEHOLDER.sub("", l) for l in text[i : i + 20]).strip()
                if len(piece) >= 40:
                    rows.append({"label": "benign", "suite": suite, "source": f.name, "text": piece})
        n = 0
        for goal in goals(root / "default_suites" / "v1" / suite / "injection_tasks.py"):
            for attack, template in sorted(templates.items()):
                injected = template.format(goal=goal, user="Emma Johnson", model="GPT-4")
                slot = slots[n % len(slots)] if slots else "{injection_x}"
                n += 1
                text = PLACEHOLDER.sub(lambda _: injected, slot, count=1)
                text = PLACEHOLDER.sub("", text)
                rows.append({"label": "injection", "suite": suite, "attack": attack, "text": text})
    with out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    inj = sum(r["label"] == "injection" for r in rows)
    print(f"{out}: {inj} injections ({len(templates)} attacks), {len(rows) - inj} benign pieces")


main()
