#!/usr/bin/env python3
"""lp2copy.py LAYOUT < points.lp > rows.copy

Turns the line protocol of the sim input (as the file output writes it) into
PostgreSQL COPY text for the postgres output's tables, so psql's \\copy can
load the very rows gatherd writes:

  narrow: time, measurement, tags (jsonb), field, value, value_text (one row per field)
  wide:   time, <tag columns>, <field columns> in the order of the first line

Only what sim produces is handled: float fields, tags without escapes.
Timestamps are written as the plugin writes them (UTC, microseconds).
"""
import sys
import time

layout = sys.argv[1]
out = sys.stdout
last_sec, last_text = None, ""


def ts(ns):
    global last_sec, last_text
    us = ns // 1000
    sec, frac = divmod(us, 1000000)
    if sec != last_sec:
        last_sec, last_text = sec, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
    return "%s.%06d+00" % (last_text, frac)


columns = None
buf = []
for line in sys.stdin:
    head, fields, stamp = line.rstrip("\n").split(" ")
    parts = head.split(",")
    meas, tags = parts[0], [t.split("=", 1) for t in parts[1:]]
    kv = [f.split("=", 1) for f in fields.split(",")]
    t = ts(int(stamp))
    if layout == "narrow":
        js = "{" + ",".join('"%s":"%s"' % (k, v) for k, v in tags) + "}"
        prefix = "%s\t%s\t%s\t" % (t, meas, js)
        for k, v in kv:
            buf.append("%s%s\t%s\t\\N\n" % (prefix, k, v))
    else:
        if columns is None:
            columns = [k for k, _ in tags] + [k for k, _ in kv]
            sys.stderr.write(",".join(columns) + "\n")
        vals = dict(tags)
        vals.update(kv)
        buf.append(t + "\t" + "\t".join(vals.get(c, "\\N") for c in columns) + "\n")
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
