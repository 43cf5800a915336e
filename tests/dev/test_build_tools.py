"""hack/build-tools.sh builds CoreDNS with only the plugins our Corefile uses: a directive added to
the Corefile (nodeconfig.corefile) without its plugin would stop CoreDNS on the real node."""

from __future__ import annotations

import re
from pathlib import Path

from xrouter_dev.nodeconfig import NodeLayout, corefile

BUILD_TOOLS = Path(__file__).resolve().parents[2] / "hack" / "build-tools.sh"


def built_plugins() -> set[str]:
    found = re.search(r'^COREDNS_PLUGINS="([a-z0-9 ]+)"', BUILD_TOOLS.read_text(), re.MULTILINE)
    assert found, "COREDNS_PLUGINS not found in hack/build-tools.sh"
    return set(found.group(1).split())


def corefile_directives(text: str) -> set[str]:
    """The directives of every server block (a word at depth 1); their own blocks are skipped."""
    depth, found = 0, set()
    for line in text.splitlines():
        words = line.split()
        if words and depth == 1 and words[0] != "}":
            found.add(words[0])
        depth += line.count("{") - line.count("}")
    return found


def test_every_corefile_directive_is_a_plugin_we_build() -> None:
    used = corefile_directives(corefile(NodeLayout.default()))
    assert {"kubernetes", "bind"} <= used, used  # the parser sees the Corefile's directives
    assert used <= built_plugins(), f"add {sorted(used - built_plugins())} to COREDNS_PLUGINS"


def test_the_parser_skips_nested_blocks() -> None:
    text = ". {\n    errors\n    kubernetes x {\n        pods insecure\n    }\n    forward . 1.1.1.1\n}\n"
    assert corefile_directives(text) == {"errors", "kubernetes", "forward"}
