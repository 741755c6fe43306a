"""sections.py — how a side benchmark (mailbench.py, attachbench.py) keeps its
own part of RESULTS.md and RESULTS.json: its Markdown section between two
marker lines, replaced in place (appended the first time), and its results
under one key of the JSON, leaving every other part as it was."""
import json
import os
import re


def write(md, js, start, end, section, key, res):
    text = open(md).read() if os.path.exists(md) else ""
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end) + r"\n?", lambda _m: section,
                      text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(md, "w") as f:
        f.write(text)
    data = json.load(open(js)) if os.path.exists(js) else {}
    data[key] = res
    with open(js, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
