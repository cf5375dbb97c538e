"""AgentDojo cases (scripts/agentdojo_cases.py output) in evaluate.py's shape: the attack
as the family, the suite as the container. Evaluation only.

usage: agentdojo_rows.py IN.jsonl OUT.jsonl
"""

import json
import sys

with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        mal = r["label"] == "injection"
        out.write(json.dumps({"label": "malicious" if mal else "benign",
                              "family": r.get("attack", "environment data") if mal else "environment data",
                              "container": r["suite"], "text": r["text"]}) + "\n")
