"""The documentation builds offline with warnings as errors, names what the code has,
and every benchmark table on it came from the benchmark writer.

The build runs once, in a subprocess with sockets refused, as
``python -m sphinx -W --keep-going -b html docs <tmp>``.
"""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from phviz.bench import markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("index", "teaching", "serving", "method", "tuning", "paper", "benchmarks", "api")
needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None,
    reason="Sphinx is not installed (the docs extra: pip install -e '.[docs]')",
)

# Run Sphinx with every outgoing connection refused: the build must not need the network.
OFFLINE_SPHINX = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("the documentation build tried to use the network")

socket.socket.connect = refuse
socket.create_connection = refuse
from sphinx.cmd.build import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SPHINX, "-W", "--keep-going", "-q", "-b", "html"]
        + [str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if done.returncode != 0:
        pytest.fail(f"sphinx failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return out


def text_of(page: str) -> str:
    """Text without tags, entities, curly quotes or repeated spaces."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", page)).replace("’", "'").replace("‘", "'")
    return re.sub(r"\s+", " ", text)


# ------------------------------------------------------------------ the build
@needs_sphinx
def test_docs_build_offline_without_warnings(built):
    for page in PAGES:
        assert (built / f"{page}.html").is_file(), page


@needs_sphinx
def test_pages_load_nothing_from_the_network_but_mathjax(built):
    # links to read elsewhere are fine; what a page loads by itself is not (MathJax aside)
    loaded = re.compile(
        r"<(script|link|img|iframe)\b[^>]*?\b(?:src|href)=\"((?:https?:)?//[^\"]+)\""
    )
    for page in PAGES:
        for tag, url in loaded.findall((built / f"{page}.html").read_text()):
            assert tag == "script" and "mathjax" in url, f"{page}.html loads {url}"


@needs_sphinx
def test_api_page_documents_every_public_name(built):
    import phviz
    import phviz.landscape

    html = (built / "api.html").read_text()
    for name in phviz.__all__:
        assert f'id="phviz.{name}"' in html, name
    for name in phviz.landscape.__all__:
        assert f'id="phviz.landscape.{name}"' in html, name


@needs_sphinx
def test_screenshot_and_figures_reach_the_pages(built):
    assert (built / "_images" / "explorer.png").is_file()
    assert '<img alt="The explorer' in (built / "index.html").read_text()


# ------------------------------------------------------------------ benchmark tables
def table_files() -> list[Path]:
    return sorted((DOCS / "benchmarks").glob("*.md"))


def test_every_benchmark_table_came_from_the_writer():
    files = table_files()
    assert files, "docs/benchmarks/ holds no table: the Benchmarks page would be empty"
    for path in files:
        assert markdown.check_file(path) == [], path.name
    page = (DOCS / "benchmarks.md").read_text()
    assert markdown.find_tables(page) == [], "benchmarks.md has a table typed by hand"


@needs_sphinx
def test_every_table_file_is_on_the_benchmarks_page(built):
    page = text_of((built / "benchmarks.html").read_text())
    for path in table_files():
        title = re.search(r"^## (.+)$", path.read_text(), flags=re.MULTILINE).group(1)
        assert text_of(title).strip() in page, path.name


def test_written_table_has_its_provenance(tmp_path):
    path = markdown.write_table(
        "example",
        "An example",
        ["what", "seconds", "runs"],
        [["a | b", 0.123456, 1200], ["c", float("nan"), None]],
        directory=tmp_path,
        command="python -m phviz.bench example",
        notes="Measured twice.",
    )
    text = path.read_text()
    assert text.startswith(markdown.MARKER)
    assert "- command: `python -m phviz.bench example`" in text
    assert re.search(r"^- date: \d{4}-\d\d-\d\d$", text, flags=re.MULTILINE)
    assert re.search(r"^- machine: .+ · \d+ (of \d+ )?cores · ", text, flags=re.MULTILINE)
    assert re.search(r"^- phviz: \S+ · ", text, flags=re.MULTILINE)
    assert "| a \\| b | 0.1235 | 1,200 |" in text
    assert "| c | – | – |" in text
    assert "|---|---:|---:|" in text
    assert markdown.check_file(path) == []


def test_a_table_edited_by_hand_is_caught(tmp_path):
    path = markdown.write_table(
        "example", "An example", ["what", "seconds"], [["a", 1.5]], directory=tmp_path
    )
    text = path.read_text()
    path.write_text(text.replace("| 1.5 |", "| 1.2 |"))
    assert any("changed since it was written" in p for p in markdown.check_file(path))
    path.write_text(text.split("\n", 1)[1])
    assert any("marker" in p for p in markdown.check_file(path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Bad Name", "t", ["a"], [[1]]), "Invalid table name"),
        (("ok", "", ["a"], [[1]]), "Invalid title"),
        (("ok", "t", [], [[1]]), "Invalid columns"),
        (("ok", "t", ["a", "b"], [[1]]), "Invalid row 1: 1 cells for 2 columns"),
        (("ok", "t", ["a"], []), "Invalid rows"),
    ],
)
def test_writer_refuses_bad_tables(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        markdown.write_table(*args, directory=tmp_path)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ pages name the code
def mentions(page: str) -> set[str]:
    """The names a page writes as code (``name``)."""
    return set(re.findall(r"`([^`\n]+)`", (DOCS / page).read_text()))


def test_teaching_page_names_every_link_key_and_lesson():
    from phviz.config import TrainingConfig
    from phviz.lessons import LESSONS
    from phviz.links import PAGE_KEYS, SECTIONS

    named = mentions("teaching.md")
    settings = set(TrainingConfig.param) - {"name"}
    missing = (settings | set(PAGE_KEYS) | set(SECTIONS) | set(LESSONS)) - named
    for cell in named:  # a table cell may name several settings: `a`, `b`
        missing -= set(re.split(r"[,\s]+", cell))
    assert not missing, f"teaching.md does not name: {', '.join(sorted(missing))}"


def test_serving_page_names_every_limit_and_environment_setting():
    from phviz.budget import Budget

    named = mentions("serving.md")
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(Budget)}
    variables = {"PHVIZ_" + f.name.upper() for f in dataclasses.fields(Budget)}
    for source in [*(ROOT / "phviz").rglob("*.py"), *(ROOT / "apps").rglob("*.py")]:
        if "bench" not in source.parts:
            variables |= set(re.findall(r"[\"'](PHVIZ_[A-Z_]+)[\"']", source.read_text()))
    words = set()
    for cell in named:
        words |= set(re.split(r"[,\s]+", cell))
    missing = (flags | variables) - words
    assert not missing, f"serving.md does not name: {', '.join(sorted(missing))}"


def test_paper_page_names_every_preset_it_explains():
    from phviz.config import PRESET_NOTES

    named = mentions("paper.md")
    missing = set(PRESET_NOTES) - named
    assert not missing, f"paper.md does not explain: {', '.join(sorted(missing))}"


def test_readme_is_a_front_door():
    """The README stays short, opens with its two commands (the second is what CI runs),
    and every file it links to exists."""
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it to 200"
    commands = [line for line in lines[:8] if line.startswith("pip install ")]
    assert len(commands) == 2 and "panel serve apps/explorer.py" in commands[0]
    assert "python -m pytest" in commands[1]
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert links, "the README links into the documentation"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
