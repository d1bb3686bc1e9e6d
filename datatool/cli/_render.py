"""Terminal rendering: the one place that formats findings and tables for people.

Every command prints through this module so that output reads the same way
everywhere and fits the terminal:

- the width is the terminal's (or ``COLUMNS``; 80 when piped without it);
- text is wrapped at spaces only, so a path is never broken across lines; a path
  longer than the width goes on a line of its own;
- a table that does not fit drops columns in a chosen order (the least
  important first) and says which, and moves a long name column into a numbered
  key below the table rather than folding names;
- findings are grouped by sample, the root cause first (an unreadable file or a
  missing tracing before the misalignment it causes), with paths relative to the
  checked root.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from datatool.findings import Finding, Report, Severity

_STYLE = {Severity.error: "bold red", Severity.warning: "yellow", Severity.info: "dim"}
_GAP = "  "

# Codes in cause-before-consequence order: a file that cannot be read, or a
# missing tracing, explains the findings further down the same sample.
CAUSE_ORDER = (
    "no-pairs",
    "unreadable-folder",
    "outside-link",
    "unsafe-name",
    "not-regular-file",
    "too-large",
    "unreadable",
    "bad-values",
    "ambiguous-alpha",
    "missing-aligned",
    "missing-tracing",
    "empty-tracing",
    "ambiguous-name",
    "bad-sample-folder",
    "bad-name",
    "unknown-fov",
    "missing-image",
    "missing-label",
    "size-mismatch",
    "inverted",
    "not-greyscale",
    "not-binary",
    "empty-label",
    "line-width",
    "resized",
    # A tracing that is not on its micrograph (or is not a tracing) explains the
    # labels that cannot be found or sit off their image's box.
    "swapped",
    "not-a-tracing",
    "not-a-micrograph",
    "misregistered",
    "manifest-mismatch",
    "not-found",
    "wrong-pairing",
    "misaligned",
    "split-leakage",
    "duplicate",
    "few-grains",
    "open-ends",
)
_CAUSE_RANK = {code: rank for rank, code in enumerate(CAUSE_ORDER)}


def make_console(stderr: bool = False) -> Console:
    """A console for people: the terminal's width, or ``COLUMNS``, or 80 when piped."""
    return Console(stderr=stderr, highlight=False)


def wrap(text: str, width: int, indent: str = "", first: str | None = None) -> list[str]:
    """Wrap ``text`` at spaces only; words (paths) are never split.

    A word longer than the width stands alone on its line, whole.

    >>> wrap("see a/very/long/path.png now", 12)
    ['see', 'a/very/long/path.png', 'now']
    """
    lines = textwrap.wrap(
        text,
        max(width, 10),
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return lines or [indent if first is None else first]


def print_lines(console: Console, lines: Iterable[str | Text], style: str | None = None) -> None:
    """Print lines as they are: no markup, no highlighting, no re-wrapping."""
    for line in lines:
        text = line if isinstance(line, Text) else Text(line, style=style or "")
        console.print(text, soft_wrap=True, highlight=False)


def say(
    console: Console, text: str, style: str | None = None, indent: str = "", hang: str = ""
) -> None:
    """Print ``text`` wrapped at spaces to the console width (paths whole).

    Every line starts with ``indent``; lines after the first get ``hang`` more.
    """
    lines = wrap(text, console.width, indent=indent + hang, first=indent)
    print_lines(console, lines, style)


def labelled_path(label: str, path: str, width: int, indent: str = "    ") -> list[str]:
    """``label path`` on one line, or the path on its own line when they do not fit."""
    if not label:
        return [path]
    if len(label) + 1 + len(path) <= width:
        return [f"{label} {path}"]
    return [label, indent + path]


# --------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Column:
    """One table column.

    Attributes
    ----------
    name : str
        Header.
    right : bool
        Right-justify (numbers).
    drop : int
        Drop order when the table is too wide: the highest goes first; 0 never goes.
    key : bool
        A name column (paths) that moves into a numbered key below the table
        instead of being folded when the table still does not fit.
    """

    name: str
    right: bool = False
    drop: int = 0
    key: bool = False


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(c.name), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(_GAP) * max(0, len(widths) - 1)


def fit_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> tuple[list[Column], list[list[str]], list[str], list[str]]:
    """Choose what a table shows at ``width``.

    Returns
    -------
    columns, rows, dropped, key
        The kept columns and their cells, the names of the dropped columns and,
        when a key column had to leave the table, its values (row ``i`` is
        ``#i+1`` in the table).
    """
    cols = list(columns)
    body = [list(r) for r in rows]
    dropped: list[str] = []
    key: list[str] = []

    def too_wide() -> bool:
        return _total(_natural(cols, body)) > width

    key_index = next((i for i, c in enumerate(cols) if c.key), None)
    if key_index is not None and too_wide():
        # First try the name column as a numbered key: names stay whole.
        key = [r[key_index] for r in body]
        cols[key_index] = Column("#", right=True)
        body = [[*r[:key_index], str(n), *r[key_index + 1 :]] for n, r in enumerate(body, 1)]
    while too_wide():
        candidates = [(c.drop, i) for i, c in enumerate(cols) if c.drop > 0]
        if not candidates:
            break
        _, index = max(candidates)
        dropped.append(cols[index].name)
        del cols[index]
        body = [r[:index] + r[index + 1 :] for r in body]
    return cols, body, dropped, key


def table_lines(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> tuple[list[str], list[str], list[str]]:
    """Plain lines of a table fitted to ``width``: header, rule, rows; then dropped, key."""
    cols, body, dropped, key = fit_table(columns, rows, width)
    widths = _natural(cols, body)

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if c.right else cell.ljust(w)
            for c, w, cell in zip(cols, widths, cells, strict=True)
        ]
        return _GAP.join(parts).rstrip()

    lines = [line([c.name for c in cols]), "─" * min(_total(widths), width)]
    lines += [line(r) for r in body]
    return lines, dropped, key


def render_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """Print a titled table that fits the console, then its key and notes.

    Dropped columns are named with a hint where to find them (``--json``).
    """
    width = console.width
    if title:
        say(console, title, style="bold")
    lines, dropped, key = table_lines(columns, rows, width)
    print_lines(console, lines[:1], style="bold")
    print_lines(console, lines[1:])
    for n, name in enumerate(key, 1):
        print_lines(console, labelled_path(f"{n:>3}", name, width, indent="    "))
    if dropped:
        say(
            console,
            f"(left out to fit {width} columns: {', '.join(dropped)}; "
            "widen the terminal or use --json)",
            style="dim",
        )
    for note in notes:
        say(console, note, style="dim")


def render_pairs(console: Console, items: Sequence[tuple[str, str]], title: str = "") -> None:
    """Print ``name: value`` rows, values wrapped under each other at spaces."""
    width = console.width
    if title:
        say(console, title, style="bold")
    name_width = min(max((len(k) for k, _ in items), default=0), width // 3)
    for name, value in items:
        indent = " " * (name_width + 2)
        first = f"{name:<{name_width}}  "
        if len(first) > len(indent):  # a long name: value on the next lines
            print_lines(console, [name])
            first = indent
        print_lines(console, wrap(value, width, indent=indent, first=first))


# ------------------------------------------------------------------- findings
def sample_of(path: str) -> tuple[str, str]:
    """Split a finding's path into (sample folder, path inside it).

    >>> sample_of("training/0417_training/aligned/label/0417_1_2.png")
    ('training/0417_training/aligned', 'label/0417_1_2.png')
    >>> sample_of("validation/image/a_1.png")
    ('validation', 'image/a_1.png')
    >>> sample_of("manifest.json")
    ('.', 'manifest.json')
    """
    parts = path.split("/") if path else []
    if "aligned" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("aligned")
        return "/".join(parts[: at + 1]), "/".join(parts[at + 1 :]) or "."
    if len(parts) >= 2 and parts[-2] in ("image", "label"):
        return "/".join(parts[:-2]) or ".", "/".join(parts[-2:])
    if len(parts) >= 2:
        return "/".join(parts[:-1]), parts[-1]
    return ".", path or "."


def group_findings(findings: Sequence[Finding]) -> list[tuple[str, list[tuple[str, Finding]]]]:
    """Findings grouped by sample folder, worst group first, root causes first inside one."""
    groups: dict[str, list[tuple[str, Finding]]] = defaultdict(list)
    for f in findings:
        folder, inner = sample_of(f.path)
        groups[folder].append((inner, f))
    unknown = len(CAUSE_ORDER)
    for items in groups.values():
        items.sort(key=lambda x: (_CAUSE_RANK.get(x[1].code, unknown), x[1].severity.rank, x[0]))
    return sorted(groups.items(), key=lambda kv: (min(f.severity.rank for _, f in kv[1]), kv[0]))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_report(report: Report, console: Console, max_rows: int = 40) -> None:
    """Print the verdict, counts per check, then findings grouped by sample."""
    width = console.width
    s = report.summary
    verdict = Text("PASS", style="bold green") if report.ok else Text("FAIL", style="bold red")
    head = labelled_path("", report.root, width)[0]
    if 6 + len(head) <= width:
        print_lines(console, [Text.assemble(verdict, "  ", head)])
    else:
        print_lines(console, [verdict, head])
    counts = (
        f"{s.pairs} pairs, {s.files} files · {_plural(s.errors, 'error')}, "
        f"{_plural(s.warnings, 'warning')}, {s.infos} info · "
        f"{s.ignored} ignored system file(s) · {s.seconds:.1f} s"
        + (f" · {s.pairs_per_second:.0f} pairs/s" if s.pairs_per_second else "")
    )
    say(console, counts, indent="      ")
    if not report.findings:
        return
    per_code = Counter((f.severity, f.code) for f in report.findings)
    rows = [
        [sev.value, code, str(n)]
        for (sev, code), n in sorted(per_code.items(), key=lambda kv: (kv[0][0].rank, kv[0][1]))
    ]
    console.print()
    render_table(
        console,
        [Column("severity"), Column("code"), Column("count", right=True)],
        rows,
        title="Findings per check",
    )
    shown = 0
    for folder, items in group_findings(report.findings):
        if shown >= max_rows:
            break
        console.print()
        tally = Counter(f.severity for _, f in items)
        summary = ", ".join(_plural(tally[sev], sev.value) for sev in Severity if tally[sev])
        print_lines(console, labelled_path(f"{folder}", f"({summary})", width), style="bold")
        for inner, f in items[: max_rows - shown]:
            _render_finding(console, folder, inner, f)
            shown += 1
    if len(report.findings) > shown:
        say(console, f"... and {len(report.findings) - shown} more (--format json lists all)")


def _render_finding(console: Console, folder: str, inner: str, f: Finding) -> None:
    width = console.width
    label = f"  {f.severity.value:<7} {f.code}"
    lines = labelled_path(label, inner, width, indent="          ")
    first = Text(lines[0])
    first.stylize(_STYLE[f.severity], 2, 2 + len(f.severity.value))
    print_lines(console, [first, *lines[1:]])
    print_lines(console, wrap(f.message, width, indent="          "))
    for other in f.related:
        # Inside the same sample folder the short name says it; elsewhere the full path.
        other = other[len(folder) + 1 :] if other.startswith(folder + "/") else other
        print_lines(console, labelled_path("          also:", other, width, indent="          "))


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github_annotations(report: Report) -> list[str]:
    """One GitHub Actions workflow command per finding (``::error file=...::message``).

    The file is the checked root joined with the finding's path, so annotations
    point at the file in the repository when the check runs from its top.

    >>> from datatool.findings import Finding, Report
    >>> f = Finding(severity="error", code="misaligned", check="alignment",
    ...             path="a/label/x.png", message="off by (2, 0) px, limit 1")
    >>> github_annotations(Report.build("data", [f]))
    ['::error file=data/a/label/x.png,title=misaligned::off by (2, 0) px, limit 1']
    """
    level = {Severity.error: "error", Severity.warning: "warning", Severity.info: "notice"}
    root = report.root.rstrip("/")
    lines = []
    for f in report.findings:
        path = f"{root}/{f.path}" if f.path and root not in ("", ".") else (f.path or root)
        lines.append(
            f"::{level[f.severity]} file={_escape(path, True)},title={_escape(f.code, True)}"
            f"::{_escape(f.message)}"
        )
    return lines
