"""The HTML diff opened in headless Chromium (``scripts/check_diff_html.py``): the DOM the browser
builds holds every changed node, field and edge, loads nothing external and logs nothing. Without
Chromium on the machine the same DOM checks run on the raw HTML (never a silent skip)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

from spark.graphs.diff import diff_graphs, render
from tests.integration.conftest import ROOT

SCRIPT = ROOT / "scripts" / "check_diff_html.py"


def load_script() -> ModuleType:
    """The script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_diff_html", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_html_diff_is_complete_in_the_browser_or_the_raw_page() -> None:
    """With Chromium: the script renders two stored versions, opens the page headless and finds
    no problem in the DOM or the console. Without it: the raw HTML passes the same checks."""
    script = load_script()
    if script.CHROMIUM.exists():
        done = subprocess.run(
            [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "checked the DOM chromium built: 0 problem(s)"
    else:
        assert script.check(None, None) == []


def test_the_checks_name_what_a_page_misses() -> None:
    """The DOM checks can fail: a page without the removed node's row, with a script, and a
    browser log with console output are each reported."""
    script = load_script()
    old, new = script.base_spec(), script.changed_spec()
    diff = diff_graphs(old, new)
    page = render("html", old, new).replace("<td>c (fn)</td>", "<td>gone</td>")
    page = page.replace("</body>", "<script>console.log(1)</script></body>")
    problems = script.dom_problems(page, diff)
    assert "no 'removed' row holding 'c (fn)'" in problems
    assert "the page has a <script> element" in problems
    assert script.dom_problems(render("html", old, new), diff) == []
    log = '[1:1:INFO:CONSOLE:1] "boom", source: file:///x.html (1)\n[1:1:INFO:other] fine'
    assert script.console_messages(log) == [
        '[1:1:INFO:CONSOLE:1] "boom", source: file:///x.html (1)'
    ]
