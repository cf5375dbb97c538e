"""Benign prose for the detection corpus: the documentation and docstrings of unpacked
packages, one `<package>.txt` per top-level directory, a sentence or line per line.

usage: sentences.py UNPACKED_DIR OUT_DIR
"""

import ast
import pathlib
import re
import sys

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(])")
MARKUP = re.compile(r"^[\s=\-~^*#`.:|+]*$")


def pieces(text):
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(l.strip() for l in para.splitlines())
        if MARKUP.match(para) or para.startswith((".. ", ":param", ">>>")):
            continue
        for s in SPLIT.split(para):
            s = s.strip()
            if 30 <= len(s) <= 400:
                yield s


for top in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")):
    pkg = top.name.split("-")[0].lower()
    seen, lines = set(), []
    for f in sorted(top.rglob("*")):
        if not f.is_file() or f.stat().st_size > 400_000:
            continue
        text = None
        if f.suffix in (".rst", ".md", ".txt"):
            text = f.read_text(errors="replace")
        elif f.suffix == ".py":
            try:
                tree = ast.parse(f.read_text(errors="replace"))
            except (SyntaxError, ValueError):
                continue
            docs = [ast.get_docstring(n) for n in ast.walk(tree)
                    if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            text = "\n\n".join(d for d in docs if d)
        if not text:
            continue
        for s in pieces(text):
            if s not in seen:
                seen.add(s)
                lines.append(s)
    if lines:
        with open(out / f"{pkg}.txt", "a") as fh:
            fh.write("\n".join(lines) + "\n")
