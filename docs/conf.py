"""Sphinx configuration of phviz's documentation: PyData theme, pages in MyST Markdown.

    python -m sphinx -W --keep-going -b html docs docs/_build/html

builds it offline, warnings as errors (``tests/test_docs.py`` does, too).
"""

from pathlib import Path

import phviz

project = "phviz"
author = "the phviz authors"
copyright = "the phviz authors"
version = release = phviz.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
# Benchmark tables are not pages of their own: the Benchmarks page includes them.
exclude_patterns = ["_build", "benchmarks/*"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The API page documents what ``phviz.__all__`` exports, in the source's order.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = False

html_theme = "pydata_sphinx_theme"
html_title = "phviz"
html_static_path: list[str] = []
html_sidebars = {"**": []}  # the pages are few: the top bar lists them all
# Nothing that needs the network: no icon links, no analytics, no version switcher.
html_theme_options = {
    "icon_links": [],
    "navbar_end": ["theme-switcher"],
    "show_prev_next": True,
    "use_edit_page_button": False,
}

BENCHMARK_TABLES = Path(__file__).parent / "benchmarks"
TABLES_HERE = "% benchmark tables"


def include_benchmark_tables(app, docname, source):
    """On the Benchmarks page, the line ``% benchmark tables`` becomes every table file
    in benchmarks/, by file name."""
    if docname != "benchmarks":
        return
    tables = sorted(BENCHMARK_TABLES.glob("*.md"))
    includes = "".join(f"```{{include}} benchmarks/{path.name}\n```\n\n" for path in tables)
    source[0] = source[0].replace(TABLES_HERE, includes or "No tables have been written yet.")


def setup(app):
    app.connect("source-read", include_benchmark_tables)
    # a table file added or removed changes the page: read it again on every build
    app.connect("env-get-outdated", lambda app, env, added, changed, removed: ["benchmarks"])
