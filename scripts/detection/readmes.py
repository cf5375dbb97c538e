"""Benign real documentation: the READMEs of the npm packages under NODE_MODULES (the
pinned test peers), cut into pieces of about 2 KB on line boundaries. Evaluation only.

usage: readmes.py NODE_MODULES OUT.jsonl [LIMIT]
"""

import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 400
files = sorted(p for p in root.rglob("*") if p.name.lower() == "readme.md" and p.is_file())
rows = []
for f in files:
    rel = str(f.parent.relative_to(root))
    pkg = rel.rsplit("node_modules/", 1)[-1]
    piece = []
    for line in f.read_text(errors="replace").splitlines(keepends=True):
        piece.append(line)
        if sum(map(len, piece)) >= 2000:
            rows.append((pkg, "".join(piece)))
            piece = []
    if piece and sum(map(len, piece)) > 200:
        rows.append((pkg, "".join(piece)))
step = max(1, len(rows) // limit)
with open(sys.argv[2], "w") as out:
    for pkg, t in rows[::step][:limit]:
        out.write(json.dumps({"label": "benign", "family": "npm README", "container": "documentation",
                              "package": pkg, "text": t}) + "\n")
