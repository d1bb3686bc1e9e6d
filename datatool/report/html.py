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
from datatool.report.model import Distribution, LeakageSection, QualityReport, SampleSection
from datatool.report.sections import Figure, ReportFigures, single_valued

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
          min-width: 14em; overflow-wrap: anywhere; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
.sev-error { color: #c62828; font-weight: 600; }
.sev-warning { color: #a66300; font-weight: 600; }
.sev-info { color: #666; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
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
.samples { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.sample { border: 1px solid #ddd; border-radius: 8px; padding: 10px 12px; max-width: 100%; }
.sample.flagged { border-color: #c62828; border-width: 2px; }
.sample h3 { margin: 0 0 4px; font-size: 1.05em; }
.sample img { display: block; border: 1px solid #ccc; }
.sample figcaption { max-width: 256px; }
.sample .facts { font-size: 0.9em; margin: 8px 0 0; max-width: 540px; }
.key span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px;
            vertical-align: -1px; border: 1px solid #888; }
"""


def _img(figure: Figure, css_class: str = "") -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    klass = f' class="{css_class}"' if css_class else ""
    return f'<img{klass} src="data:{figure.mime};base64,{data}" alt="{escape(figure.title)}">'


def _figure(figure: Figure, title: bool = True) -> str:
    """The picture with its caption; ``title=False`` when the plot draws its own title."""
    parts = [escape(figure.title)] if title else []
    if figure.caption:
        parts.append(f"<span class='muted'>{escape(figure.caption)}</span>")
    caption = f"<figcaption>{'<br>'.join(parts)}</figcaption>" if parts else ""
    return f"<figure>{_img(figure)}{caption}</figure>"


def _path(path: str) -> str:
    """An escaped path that may wrap after a slash, never inside a name."""
    return escape(path).replace("/", "/<wbr>")


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


def _key(finding: Finding) -> tuple[str, str, str]:
    return finding.code, finding.path, finding.message


def _group_title(finding: Finding, across: set[tuple[str, str, str]]) -> str:
    """The check family, with the leakage check split into what its findings mean."""
    if _key(finding) in across:
        return "leakage across splits"
    if finding.code == "duplicate":
        return "duplicates inside one split"
    return finding.check


def _findings(findings: list[Finding], leakage: LeakageSection | None = None) -> str:
    if not findings:
        return "<p>The check found nothing to report.</p>"
    across = {_key(f) for f in leakage.across_splits} if leakage else set()
    groups: dict[tuple[Severity, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.severity, _group_title(f, across))].append(f)
    parts = []
    for (severity, check), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0].rank, kv[0][1])
    ):
        opened = " open" if severity is Severity.error else ""
        rows = "".join(
            f"<tr><td>{escape(f.code)}</td><td class='path'>{_path(f.path)}</td>"
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
    same = single_valued(c)
    facts = (
        "<p>Not charted (nothing to compare): " + "; ".join(escape(t) for t in same) + ".</p>"
        if same
        else ""
    )
    return (
        f"<p>{c.pairs} pairs in {c.known_samples()} sample(s).</p>"
        f"<div class='grid'>{tables}</div>{stats}{guideline}{facts}"
        f"<div class='grid'>{plots}</div>"
    )


def _leakage_rows(findings: list[Finding]) -> str:
    return "".join(
        f"<tr><td class='sev-{f.severity.value}'>{escape(f.severity.value)}</td>"
        f"<td>{escape(f.code)}</td><td class='path'>{_path(f.path)}</td>"
        f"<td class='path'>{'<br>'.join(_path(p) for p in f.related)}</td>"
        f"<td>{escape(f.message)}</td></tr>"
        for f in findings
    )


def _leakage(report: QualityReport) -> str:
    leak = report.leakage
    if leak is None:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("severity", "code", "file", "other files", "message"))
    head = f"<tr>{head}</tr>"
    across = (
        f"<p>{len(leak.across_splits)} finding(s): the same content in two splits, so the "
        "held-out scores are not held out. Move or remove one copy.</p>"
        f"<table>{head}{_leakage_rows(leak.across_splits)}</table>"
        if leak.across_splits
        else "<p>No content found in two splits.</p>"
    )
    within = (
        f"<p>{len(leak.within_split)} cluster(s) of near-identical crops inside one split: "
        "not leakage, but their grains weigh more in training. Keep one of each.</p>"
        f"<table>{head}{_leakage_rows(leak.within_split)}</table>"
        if leak.within_split
        else "<p>No duplicates inside a split.</p>"
    )
    return (
        "<h2 id='leakage'>Leakage and duplicates</h2>"
        f"<h3>Across splits</h3>{across}<h3>Inside one split</h3>{within}"
    )


_BOXES_FROM = {
    "manifest": "crop boxes as the build cut them (manifest.json)",
    "plan": "crop boxes from crops.json",
    "located": "crop boxes where the check found the crops",
    None: "no crop box known",
}


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{format(value, spec)}{unit}"


def _sample_table(samples: list[SampleSection]) -> str:
    rows = "".join(
        f"<tr><td><a href='#sample-{escape(s.split)}-{escape(s.id)}'>{escape(s.id)}</a></td>"
        f"<td>{escape(s.split)}</td><td class='num'>{s.pairs}</td>"
        f"<td class='num'>{s.flagged_pairs}</td>"
        + (
            f"<td class='num'>{s.grains.grains}</td>"
            f"<td class='num'>{_fmt(s.grains.mean_intercept_px, '.1f')}</td>"
            f"<td class='num'>{s.grains.open_ends}</td>"
            f"<td class='num'>{_fmt(s.grains.boundary_fraction, '.1%')}</td>"
            if s.grains
            else "<td colspan='4' class='muted'>no tracing measured</td>"
        )
        + "</tr>"
        for s in samples
    )
    return (
        "<table><tr><th>sample</th><th>split</th><th>pairs</th><th>flagged</th>"
        "<th>complete grains</th><th>mean intercept, px</th><th>open ends</th>"
        f"<th>boundary fraction</th></tr>{rows}</table>"
    )


def _sample_card(
    section: SampleSection, thumbnails: list[Figure], severity: dict[str, Severity]
) -> str:
    flagged = bool(section.codes)
    badges = "".join(
        f"<span class='badge {escape(severity[c].value if c in severity else '')}'>"
        f"{escape(c)}</span>"
        for c in section.codes
    ) or ("<span class='badge'>clean</span>")
    g = section.grains
    facts = (
        f"{g.grains} complete grains · mean intercept {_fmt(g.mean_intercept_px, '.1f', ' px')}"
        f" · mean diameter {_fmt(g.mean_diameter_px, '.1f', ' px')} · {g.open_ends} open ends"
        f" · {g.triple_junctions} triple junctions · boundary fraction "
        f"{g.boundary_fraction:.1%}"
        if g
        else "grains not measured (no readable tracing)"
    )
    boxes = sum(len(f.boxes) for f in section.fields)
    flagged_boxes = sum(b.flagged for f in section.fields for b in f.boxes)
    where = _BOXES_FROM[section.boxes_from]
    if boxes:
        red = f", {flagged_boxes} with findings in red" if flagged_boxes else ""
        where += f" ({boxes} over {len(section.fields)} field(s) of view{red})"
    pictures = "".join(_figure(f) for f in thumbnails) or "<p>No readable micrograph.</p>"
    notes = "".join(f"<br><span class='sev-warning'>{escape(n)}</span>" for n in section.notes)
    return (
        f"<div class='sample{' flagged' if flagged else ''}' "
        f"id='sample-{escape(section.split)}-{escape(section.id)}'>"
        f"<h3>{escape(section.id)} <span class='muted'>· {escape(section.split)} · "
        f"{section.pairs} pairs</span> {badges}</h3>"
        f"<div class='muted path'>{escape(section.folder)}</div>"
        f"<div class='grid'>{pictures}</div>"
        f"<p class='facts'>{escape(facts)}<br>{escape(where)}{notes}</p></div>"
    )


def _samples(report: QualityReport, figures: ReportFigures) -> str:
    if not report.samples:
        return (
            "<h2 id='samples'>Samples</h2><p>A flat set: no originals, so no sample to show "
            "(the pairs are pictured below).</p>"
        )
    key = (
        "<p class='key'>Each field of view shrunk to at most 256 px:"
        "<span style='background: rgb(0, 220, 255)'></span>tracing"
        "<span style='background: rgb(255, 214, 0)'></span>crop box, numbered by crop index"
        "<span style='background: rgb(255, 48, 48)'></span>crop with findings. "
        "Grain statistics are of the tracing, scale-bar strip removed.</p>"
    )
    severity: dict[str, Severity] = {}
    for f in report.check.findings:
        if f.code not in severity or f.severity.rank < severity[f.code].rank:
            severity[f.code] = f.severity
    cards = "".join(
        _sample_card(section, thumbnails, severity)
        for section, thumbnails in zip(report.samples, figures.samples, strict=True)
    )
    sizes = _figure(figures.grain_sizes, title=False) if figures.grain_sizes is not None else ""
    return (
        f"<h2 id='samples'>Samples</h2>{key}{_sample_table(report.samples)}{sizes}"
        f"<div class='samples'>{cards}</div>"
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
        "<nav><a href='#findings'>Findings</a><a href='#leakage'>Leakage</a>"
        "<a href='#composition'>Composition</a><a href='#samples'>Samples</a>"
        f"<a href='#pictures'>Pictures</a>{models_link}"
        "<a href='#provenance'>How it was made</a></nav>"
        f"{_verdict(report)}"
        f"<h2 id='findings'>Findings</h2>{_findings(check.findings, report.leakage)}"
        f"{_leakage(report)}"
        f"<h2 id='composition'>Composition</h2>{_composition(report, figures)}"
        f"{_samples(report, figures)}"
        f"<h2 id='pictures'>Pictures</h2>{_pictures(report, figures)}"
        f"{_models(report, figures)}"
        f"{_provenance(report)}"
        "</body></html>\n"
    )
