"""The report as one self-contained HTML page: inline CSS, embedded PNGs, no JavaScript.

Plain string templating; every piece of text from the data goes through
:func:`html.escape`. The page opens from disk in any browser without network
access.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from html import escape

from datatool.findings import Finding, Severity
from datatool.report.model import Distribution, QualityReport
from datatool.report.sections import Figure, ReportFigures

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 0 auto; max-width: 1240px; padding: 0 24px 48px; color: #1d1d1f; }
h1 { font-size: 1.6em; margin: 24px 0 4px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
nav a { margin-right: 14px; }
.muted { color: #666; }
.verdict { padding: 14px 18px; border-radius: 8px; font-size: 1.25em; margin: 16px 0; }
.verdict.pass { background: #e4f6e8; border: 2px solid #2e8b46; }
.verdict.fail { background: #fde8e8; border: 2px solid #c62828; }
.verdict strong { font-size: 1.3em; margin-right: 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em;
          word-break: break-all; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
.sev-error { color: #c62828; font-weight: 600; }
.sev-warning { color: #a66300; font-weight: 600; }
.sev-info { color: #666; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; }
.pairs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figcaption { font-size: 0.85em; color: #555; max-width: 460px; }
.pair { border: 1px solid #ddd; border-radius: 8px; padding: 10px 12px; max-width: 100%; }
.pair.flagged { border-color: #c62828; border-width: 2px; }
.pair h3 { margin: 0 0 6px; font-size: 1.05em; }
.pair img { width: 256px; max-width: none; image-rendering: pixelated; border: 1px solid #ccc; }
.pair .path { max-width: 560px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 0.8em;
         margin-right: 4px; background: #eee; }
.badge.error { background: #c62828; color: white; }
.badge.warning { background: #f0a000; color: black; }
p.warning { background: #fff4d6; border-left: 4px solid #f0a000; padding: 6px 10px; }
.overlays img { width: 180px; max-width: none; image-rendering: pixelated; }
.overlays td { border: none; padding: 4px 6px; }
"""


def _img(figure: Figure, css_class: str = "") -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    klass = f' class="{css_class}"' if css_class else ""
    return f'<img{klass} src="data:image/png;base64,{data}" alt="{escape(figure.title)}">'


def _figure(figure: Figure, title: bool = True) -> str:
    """The picture with its caption; ``title=False`` when the plot draws its own title."""
    parts = [escape(figure.title)] if title else []
    if figure.caption:
        parts.append(f"<span class='muted'>{escape(figure.caption)}</span>")
    caption = f"<figcaption>{'<br>'.join(parts)}</figcaption>" if parts else ""
    return f"<figure>{_img(figure)}{caption}</figure>"


def _value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _verdict(report: QualityReport) -> str:
    check = report.check
    s = check.summary
    word, klass = ("PASS", "pass") if check.ok else ("FAIL", "fail")
    strict = " (strict: warnings fail too)" if check.strict else ""
    return (
        f'<div class="verdict {klass}" id="verdict"><strong>{word}</strong>'
        f"{s.errors} error(s), {s.warnings} warning(s), {s.infos} info{strict}"
        f'<div class="muted">{s.pairs} pairs, {s.files} files checked in {s.seconds:.1f} s'
        f"{f', {s.ignored} system file(s) ignored' if s.ignored else ''}</div></div>"
    )


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return "<p>The check found nothing to report.</p>"
    groups: dict[tuple[Severity, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.severity, f.check)].append(f)
    parts = []
    for (severity, check), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0].rank, kv[0][1])
    ):
        opened = " open" if severity is Severity.error else ""
        rows = "".join(
            f"<tr><td>{escape(f.code)}</td><td class='path'>{escape(f.path)}</td>"
            f"<td>{escape(f.message)}</td><td class='num'>{escape(_value(f.measured))}</td>"
            f"<td class='num'>{escape(_value(f.expected))}</td></tr>"
            for f in items
        )
        parts.append(
            f"<details{opened}><summary><span class='sev-{severity.value}'>{severity.value}</span>"
            f" · {escape(check)} · {len(items)} finding(s)</summary>"
            "<table><tr><th>code</th><th>file</th><th>message</th><th>measured</th>"
            f"<th>expected</th></tr>{rows}</table></details>"
        )
    return "".join(parts)


def _counts_table(title: str, counts: dict[str, int]) -> str:
    if not counts:
        return ""
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td class='num'>{v}</td></tr>" for k, v in counts.items()
    )
    return f"<table><tr><th>{escape(title)}</th><th>pairs</th></tr>{rows}</table>"


def _distribution_row(name: str, unit: str, d: Distribution) -> str:
    def fmt(v: float | None) -> str:
        return "" if v is None else f"{v:.3g}"

    return (
        f"<tr><td>{escape(name)}</td><td class='num'>{d.measured}</td>"
        f"<td class='num'>{d.missing}</td><td class='num'>{fmt(d.min)}</td>"
        f"<td class='num'>{fmt(d.median)}</td><td class='num'>{fmt(d.max)}</td>"
        f"<td>{escape(unit)}</td></tr>"
    )


def _composition(report: QualityReport, figures: ReportFigures) -> str:
    c = report.composition
    tables = "".join(
        _counts_table(title, counts)
        for title, counts in (
            ("split", c.per_split),
            ("sample", c.per_sample),
            ("source", c.per_source),
            ("field of view", c.per_fov),
            ("image size", c.image_sizes),
        )
    )
    stats = (
        "<table><tr><th>measure</th><th>measured</th><th>missing</th><th>min</th>"
        "<th>median</th><th>max</th><th>unit</th></tr>"
        + _distribution_row("label line width", "px", c.line_width)
        + _distribution_row("complete grains per crop", "grains", c.grains)
        + _distribution_row("untraced area", "share of crop", c.untraced_fraction)
        + "</table>"
    )
    guideline = (
        f"<p>{c.below_guideline} of {c.pairs} crop(s) hold fewer than {c.grain_guideline} "
        f"complete grains (the lab's guideline); expected line width "
        f"{c.expected_line_width:g} px.</p>"
    )
    plots = "".join(_figure(f, title=False) for f in figures.composition)
    return (
        f"<p>{c.pairs} pairs in {c.known_samples()} sample(s).</p>"
        f"<div class='grid'>{tables}</div>{stats}{guideline}<div class='grid'>{plots}</div>"
    )


def _pictures(report: QualityReport, figures: ReportFigures) -> str:
    if not report.pictures:
        return "<p>No pair to show.</p>"
    flagged = sum(p.flagged for p in report.pictures)
    clean = len(report.pictures) - flagged
    intro = (
        f"<p>{flagged} flagged pair(s) first, worst first"
        + (
            f" ({report.flagged_not_pictured} more flagged not pictured)"
            if report.flagged_not_pictured
            else ""
        )
        + f", then {clean} clean pair(s) drawn at random (seed {report.parameters.seed}). "
        "Each image is shown in grey with its label drawn over it in red: the red lines "
        "should sit on the grain boundaries. For a misaligned pair the label is also shown "
        "moved by the offset the check found, in green: it should then fit.</p>"
    )
    cards = []
    for entry, pair_figures in zip(report.pictures, figures.pairs, strict=True):
        badges = (
            "".join(
                f"<span class='badge {escape(entry.worst.value if entry.worst else '')}'>"
                f"{escape(code)}</span>"
                for code in entry.codes
            )
            or "<span class='badge'>clean</span>"
        )
        offset = ""
        if entry.offset is not None:
            dx, dy = entry.offset
            offset = f"<br>offset (dx, dy) = ({dx:+g}, {dy:+g}) px"
        files = "<br>".join(escape(p) for p in (entry.image, entry.label) if p)
        body = "".join(_figure(f) for f in pair_figures) or "<p>No readable picture.</p>"
        cards.append(
            f"<div class='pair{' flagged' if entry.flagged else ''}'>"
            f"<h3>{escape(entry.name)} {badges}</h3>"
            f"<div class='muted path'>{files}{offset}</div>"
            f"<div class='grid'>{body}</div></div>"
        )
    return intro + f"<div class='pairs'>{''.join(cards)}</div>"


def _models(report: QualityReport, figures: ReportFigures) -> str:
    m = report.models
    if m is None:
        return ""
    sweep = m.sweep
    names = sweep.metric_names()
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for row in sweep.means:
        values = row.metric_values()
        cells = "".join(f"<td class='num'>{values.get(n, float('nan')):.4f}</td>" for n in names)
        rows.append(f"<tr><td class='num'>{row.epoch}</td>{cells}</tr>")
    table = f"<table><tr><th>epoch</th>{head}</tr>{''.join(rows)}</table>"
    overlays = ""
    if figures.model_overlays:
        columns = next(iter(figures.model_overlays.values()))
        head = "".join(f"<th>{escape(f.title)}</th>" for items in columns.values() for f in items)
        body = "".join(
            f"<tr><th>{escape(image)}</th>"
            + "".join(f"<td>{_img(f)}</td>" for items in by_epoch.values() for f in items)
            + "</tr>"
            for image, by_epoch in figures.model_overlays.items()
        )
        keys = "; ".join(
            dict.fromkeys(
                f"{f.title.split(': ', 1)[-1]}: {f.caption}"
                for items in columns.values()
                for f in items
            )
        )
        overlays = (
            "<h3>First and last epoch</h3>"
            f"<p class='muted'>{escape(keys)}</p>"
            f"<table class='overlays'><tr><th>image</th>{head}</tr>{body}</table>"
        )
    loss = _figure(figures.loss_vs_epoch, title=False) if figures.loss_vs_epoch else ""
    where = f"the {escape(m.split)} split" if m.split else "every pair"
    return (
        f"<h2 id='models'>Models</h2><p>Checkpoints in <code>{escape(m.checkpoints)}</code> "
        f"scored on {where} at {sweep.options.resolution} px. Losses: lower is better; "
        f"precision, recall, F1: higher is better.</p>"
        + (f"<p class='warning'><b>Warning:</b> {escape(m.warning)}</p>" if m.warning else "")
        + f"{loss}"
        f"<h3>Mean scores per epoch</h3>{table}{overlays}"
    )


def _kv_table(items: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_value(v))}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _provenance(report: QualityReport) -> str:
    p = report.parameters
    made = _kv_table(
        [
            ("datatool version", report.tool_version),
            ("created (UTC)", report.created),
            ("dataset", p.root),
            ("clean pairs pictured", p.samples),
            ("seed", p.seed),
            ("max flagged pictured", p.max_flagged),
            ("checkpoints", p.checkpoints),
            ("evaluated split", p.eval_split),
            ("sweep resolution, px", p.resolution),
        ]
    )
    options = _kv_table(sorted(report.check.options.items()))
    lineage = "<p>No merge manifest: the dataset's lineage is not recorded.</p>"
    if report.lineage is not None:
        lin = report.lineage
        lineage = _kv_table(
            [
                ("merged dataset", lin.name),
                ("manifest", lin.manifest),
                ("merged (UTC)", lin.created),
                ("merged with datatool", lin.tool_version),
                ("sources", ", ".join(lin.sources)),
                ("merge runs", lin.runs),
                ("duplicates stored once", lin.duplicates),
                ("conflicting labels accepted", lin.conflicts),
                ("pairs refused", lin.refused),
            ]
        ) + _counts_table("lineage", lin.chains)
    return (
        f"<h2 id='provenance'>How this report was made</h2>{made}"
        f"<h3>Check options</h3>{options}<h3>Lineage</h3>{lineage}"
    )


def render_html(report: QualityReport, figures: ReportFigures) -> str:
    """The whole page as one string (UTF-8, self-contained, no JavaScript)."""
    check = report.check
    verdict = "PASS" if check.ok else "FAIL"
    models_link = "<a href='#models'>Models</a>" if report.models else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{verdict} · datatool report · {escape(check.root)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Dataset quality report</h1><div class='muted path'>{escape(check.root)}</div>"
        "<nav><a href='#findings'>Findings</a><a href='#composition'>Composition</a>"
        f"<a href='#pictures'>Pictures</a>{models_link}"
        "<a href='#provenance'>How it was made</a></nav>"
        f"{_verdict(report)}"
        f"<h2 id='findings'>Findings</h2>{_findings(check.findings)}"
        f"<h2 id='composition'>Composition</h2>{_composition(report, figures)}"
        f"<h2 id='pictures'>Pictures</h2>{_pictures(report, figures)}"
        f"{_models(report, figures)}"
        f"{_provenance(report)}"
        "</body></html>\n"
    )
