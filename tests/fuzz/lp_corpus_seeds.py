#!/usr/bin/env python3
# Write every decode input of the line-protocol corpus as a libFuzzer seed
# (a first byte for the precision, then the text), for tests/fuzz/run.
#   lp_corpus_seeds.py CORPUS.json OUTDIR
import base64, json, re, sys

text = open(sys.argv[1], encoding="utf-8").read()
# numbers above 2^63 are fine for Python's json; nothing to work around here
corpus = json.loads(text)
prec = {"1ns": 0, "1µs": 1, "1us": 1, "1ms": 2, "1s": 3}
for key, case in corpus["decode"].items():
    t = case["input"]["text"]
    data = base64.b64decode(t["binary"] + "==") if isinstance(t, dict) else t.encode("utf-8")
    with open(f"{sys.argv[2]}/{key}", "wb") as f:
        f.write(bytes([prec.get(case["input"].get("precision", "1ns"), 0)]) + data)
