"""A short Markdown summary of a quality report, for an issue or a notebook."""

from __future__ import annotations

from collections import Counter

from datatool.report.model import QualityReport


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: QualityReport, max_findings: int = 20) -> str:
    """Verdict, counts, the worst findings, composition and model scores as Markdown."""
    check = report.check
    s = check.summary
    c = report.composition
    lines = [
        f"## Dataset quality report: {'PASS' if check.ok else 'FAIL'}",
        "",
        f"`{_cell(check.root)}`: **{s.errors} error(s)**, **{s.warnings} warning(s)**, "
        f"{s.infos} info; {s.pairs} pairs, {s.files} files "
        f"(datatool {report.tool_version}, {report.created}).",
        "",
    ]
    if check.findings:
        per_code = Counter((f.severity.value, f.code) for f in check.findings)
        lines += ["| severity | code | count |", "|---|---|---:|"]
        lines += [f"| {sev} | {code} | {n} |" for (sev, code), n in per_code.items()]
        lines += ["", "| severity | file | message |", "|---|---|---|"]
        lines += [
            f"| {f.severity.value} | `{_cell(f.path)}` | {_cell(f.message)} |"
            for f in check.findings[:max_findings]
        ]
        if len(check.findings) > max_findings:
            lines.append(f"\n... and {len(check.findings) - max_findings} more (see the HTML).")
        lines.append("")
    if report.leakage is not None:
        leak = report.leakage
        lines += [
            "### Leakage",
            "",
            f"- across splits (the same content in two splits): {len(leak.across_splits)} "
            "finding(s)",
            f"- duplicates inside one split (not leakage): {len(leak.within_split)} cluster(s)",
            "",
        ]
    splits = ", ".join(f"{k}: {v}" for k, v in c.per_split.items())
    lines += [
        "### Composition",
        "",
        f"- pairs per split: {splits}",
        f"- samples: {c.known_samples()}; image sizes: "
        + ", ".join(f"{k} ({v})" for k, v in c.image_sizes.items()),
        f"- line width: median {c.line_width.median if c.line_width.median is not None else '-'}"
        f" px (expected {c.expected_line_width:g})",
        f"- crops below the {c.grain_guideline}-grain guideline: {c.below_guideline} of {c.pairs}",
    ]
    if c.per_source:
        lines.append(
            "- pairs per source: " + ", ".join(f"{k}: {v}" for k, v in c.per_source.items())
        )
    if report.lineage is not None:
        lines.append(
            f"- merged dataset {report.lineage.name} from {', '.join(report.lineage.sources)}"
        )
    if report.samples:
        lines += [
            "",
            "### Samples",
            "",
            "| sample | split | pairs | flagged | complete grains | mean intercept, px | "
            "open ends | boundary fraction |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for sample in report.samples:
            g = sample.grains
            measured = (
                f"{g.grains} | "
                + ("-" if g.mean_intercept_px is None else f"{g.mean_intercept_px:.1f}")
                + f" | {g.open_ends} | {g.boundary_fraction:.1%}"
                if g
                else "- | - | - | -"
            )
            lines.append(
                f"| {_cell(sample.id)} | {_cell(sample.split)} | {sample.pairs} | "
                f"{sample.flagged_pairs} | {measured} |"
            )
    if report.models is not None:
        sweep = report.models.sweep
        lines += [
            "",
            "### Models",
            "",
            *([f"**Warning:** {report.models.warning}", ""] if report.models.warning else []),
            "| epoch | BCE | top-hat | Gaussian | F1 |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in sweep.means:
            gaussian = row.gaussian
            lines.append(
                f"| {row.epoch} | {row.bce:.4f} | {row.tophat:.4f} | {gaussian:.4f} | "
                f"{row.f1:.3f} |"
            )
    return "\n".join(lines) + "\n"
