"""``datatool report``: a dataset quality report a person can read in a browser.

:func:`build_report` runs the check once (and the checkpoint sweep once, with
checkpoints) and draws the pictures; :func:`write_report` writes the HTML page
and, on request, the same content as JSON and a Markdown summary. Rendering
only: every number comes from the library's own check and sweep.
"""

from __future__ import annotations

import os
from pathlib import Path

from datatool.report.model import QualityReport
from datatool.report.sections import Figure, ReportFigures, build_report

__all__ = ["Figure", "QualityReport", "ReportFigures", "build_report", "write_report"]


def write_report(
    report: QualityReport,
    figures: ReportFigures,
    html_path: str | os.PathLike[str],
    *,
    json_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the HTML page (and the JSON data and Markdown summary when asked), atomically.

    Returns the paths written, HTML first.
    """
    from datatool.io import atomic_write_json, atomic_write_text
    from datatool.report.html import render_html
    from datatool.report.markdown import render_markdown

    written = [Path(html_path)]
    atomic_write_text(html_path, render_html(report, figures))
    if json_path is not None:
        atomic_write_json(json_path, report)
        written.append(Path(json_path))
    if markdown_path is not None:
        atomic_write_text(markdown_path, render_markdown(report))
        written.append(Path(markdown_path))
    return written
