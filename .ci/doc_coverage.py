"""Every public symbol has documentation (issue 8): reads the symbol graphs that
`swift package dump-symbol-graph --minimum-access-level public` writes and lists each public symbol
declared in this package's Sources/ without a doc comment. A member that implements a documented
protocol requirement counts as documented, as DocC shows the requirement's text for it (the
symbol graph carries it as the member's inherited doc comment); members synthesized from protocol
extensions are skipped. Exits 1 if anything is missing.

Usage: doc_coverage.py SYMBOL_GRAPH_DIRECTORY [PACKAGE_DIRECTORY]
"""
import glob
import json
import os
import sys
from urllib.parse import unquote, urlparse

graphs, package = sys.argv[1], os.path.realpath(sys.argv[2] if len(sys.argv) > 2 else ".")
sources = os.path.join(package, "Sources") + os.sep
missing, checked, files = [], 0, 0
seen = set()
for path in sorted(glob.glob(os.path.join(graphs, "**", "*.symbols.json"), recursive=True)):
    files += 1
    graph = json.load(open(path))
    for symbol in graph.get("symbols", []):
        precise = symbol["identifier"]["precise"]
        if "::SYNTHESIZED::" in precise or precise in seen:
            continue
        if symbol.get("accessLevel") not in ("public", "open"):
            continue
        uri = symbol.get("location", {}).get("uri")
        if not uri:
            continue
        file = os.path.realpath(unquote(urlparse(uri).path))
        if not file.startswith(sources):
            continue
        seen.add(precise)
        checked += 1
        lines = symbol.get("docComment", {}).get("lines", [])
        if not any(line.get("text", "").strip() for line in lines):
            line = symbol["location"].get("position", {}).get("line", 0) + 1
            missing.append(f"{os.path.relpath(file, package)}:{line}: {'.'.join(symbol['pathComponents'])} "
                           f"({symbol['kind']['identifier'].removeprefix('swift.')})")
if files == 0:
    sys.exit(f"doc_coverage: no symbol graphs under {graphs}")
for m in sorted(missing):
    print(m)
print(f"doc coverage: {checked - len(missing)} of {checked} public symbols documented ({files} symbol graphs)")
sys.exit(1 if missing else 0)
