#!/usr/bin/env bash
# Render docs/architecture.dot into docs/architecture.svg with graphviz's dot
# (apt-get install graphviz, brew install graphviz, ...). The picture is stamped with the
# source's sha256: tests/unit/test_docs_pages.py fails when the two drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null 2>&1 || { echo "needs graphviz's dot (apt-get install graphviz)" >&2; exit 1; }
hash=$(sha256sum docs/architecture.dot | cut -d' ' -f1)
dot -Tsvg docs/architecture.dot \
    | sed "1a<!-- rendered from docs/architecture.dot, sha256 $hash, by scripts/render_architecture.sh -->" \
    >docs/architecture.svg.tmp
mv docs/architecture.svg.tmp docs/architecture.svg
echo "docs/architecture.svg rendered" >&2
