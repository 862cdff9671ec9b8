#!/usr/bin/env python3
"""Merges hand-written mdoc sections (ENVIRONMENT, FILES, EXIT STATUS, EXAMPLES, ...) into a page
that swift-argument-parser's generate-manual wrote. A section in the fragment replaces the
generated section of the same name (e.g. the generic EXIT STATUS) or is added in the order
mdoc(7) recommends. Usage: merge.py GENERATED_PAGE FRAGMENT > PAGE"""
import re
import sys

ORDER = ["NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO", "AUTHORS"]


def sections(text):
    head, parts, current = [], [], None
    for line in text.splitlines():
        m = re.match(r'^\.Sh\s+"?([^"]+)"?\s*$', line)
        if m:
            current = [m.group(1), []]
            parts.append(current)
        elif current is None:
            head.append(line)
        else:
            current[1].append(line)
    return head, parts


def rank(name):
    return ORDER.index(name) if name in ORDER else ORDER.index("EXAMPLES")


page_head, page = sections(open(sys.argv[1]).read())
_, extra = sections(open(sys.argv[2]).read())
merged = {name: body for name, body in page}
names = [name for name, _ in page]
for name, body in extra:
    if name not in merged:
        names.append(name)
    merged[name] = body
names.sort(key=rank)  # stable: generated order is kept among equals
out = page_head[:]
for name in names:
    out.append('.Sh "%s"' % name if " " in name else ".Sh %s" % name)
    out.extend(merged[name])
print("\n".join(out))
