#!/usr/bin/env python3
"""Embed a text file as a C string constant: embed.py IN OUT SYMBOL."""
import sys

src, dst, sym = sys.argv[1:4]
with open(src, 'rb') as f:
    data = f.read()
lines = ['/* generated from %s by embed.py; do not edit */' % src.split('/')[-1],
         'static const char %s[] =' % sym]
for chunk in data.split(b'\n'):
    text = chunk.decode('utf-8').replace('\\', '\\\\').replace('"', '\\"')
    lines.append('    "%s\\n"' % text)
lines[-1] += ';'
with open(dst, 'w') as f:
    f.write('\n'.join(lines) + '\n')
