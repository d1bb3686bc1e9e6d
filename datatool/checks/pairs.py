"""Pixel checks on one image/label pair: sizes, binary, polarity, width, grains."""

from __future__ import annotations

from collections.abc import Iterator

from datatool import grains, labels
from datatool.checks import CheckOptions, PairData, finding, register
from datatool.findings import Finding


@register("image", "pair")
def image_format(pair: PairData, options: CheckOptions) -> Iterator[Finding]:
    """Images (and labels) that are not plain greyscale say what happens to them."""
    for decoded, rel in ((pair.image, pair.entry.image), (pair.label, pair.entry.label)):
        if decoded is not None and decoded.conversion and rel is not None:
            yield finding(
                "warning",
                "not-greyscale",
                "image",
                rel,
                f"{decoded.mode} file: {decoded.conversion}",
                measured=decoded.mode,
                expected="L",
            )


@register("size", "pair")
def sizes(pair: PairData, options: CheckOptions) -> Iterator[Finding]:
    """Image and label of a pair have the same pixel size."""
    if pair.image is None or pair.label is None:
        return
    ih, iw = pair.image.pixels.shape
    lh, lw = pair.label.pixels.shape
    if (ih, iw) != (lh, lw):
        yield finding(
            "error",
            "size-mismatch",
            "size",
            pair.entry.label,
            f"label is {lw}x{lh} px but its image {pair.entry.name} is {iw}x{ih} px",
            measured=[float(lw), float(lh)],
            expected=[float(iw), float(ih)],
        )


@register("label", "pair")
def label_quality(pair: PairData, options: CheckOptions) -> Iterator[Finding]:
    """Binary, white lines on black, of the expected width, not empty; grains counted."""
    if pair.label is None or pair.entry.label is None:
        return
    rel = pair.entry.label
    grey = pair.label.pixels
    grey_share = labels.grey_fraction(grey)
    if grey_share > options.grey_tolerance:
        yield finding(
            "error",
            "not-binary",
            "label",
            rel,
            f"{grey_share:.1%} of the label's pixels are grey (neither black nor white); "
            f"at most {options.grey_tolerance:.1%} is tolerated: binarize it "
            "(datatool build does)",
            measured=round(grey_share, 4),
            expected=options.grey_tolerance,
        )
    if pair.measures.inverted:
        yield finding(
            "error",
            "inverted",
            "label",
            rel,
            "label is mostly white (black lines on white); labels must be white lines on "
            "black: invert it (datatool build makes labels white-on-black)",
        )
        return  # width and grains of an inverted label would be nonsense
    mask = pair.label_mask
    if not mask.any():
        yield finding("warning", "empty-label", "label", rel, "label has no boundary pixels")
        pair.stats.grains = 0
        pair.stats.untraced_fraction = 1.0
        return
    width = pair.line_width
    pair.stats.line_width = round(width, 2) if width is not None else None
    if width is not None and abs(width - options.line_width) > options.line_width_tolerance:
        yield finding(
            "error",
            "line-width",
            "label",
            rel,
            f"line width {width:.1f} px, expected {options.line_width} "
            f"± {options.line_width_tolerance:g} px",
            measured=round(width, 2),
            expected=float(options.line_width),
        )
    yield from _grain_findings(pair, options, rel)


def _grain_findings(pair: PairData, options: CheckOptions, rel: str) -> Iterator[Finding]:
    """Complete grains as :mod:`datatool.grains` defines them; open ends by position."""
    gmap = pair.measures.grains  # measured once per distinct label
    pair.stats.grains = gmap.count
    pair.stats.untraced_fraction = round(grains.untraced_share(gmap), 4)
    if gmap.count < options.min_grains:
        yield finding(
            "warning",
            "few-grains",
            "grains",
            rel,
            f"{gmap.count} complete grain(s) in the crop, fewer than the "
            f"{options.min_grains} the lab aims at",
            measured=gmap.count,
            expected=options.min_grains,
        )
    ends = pair.measures.open_ends
    if len(ends) >= grains.MANY_OPEN_ENDS:
        shown = ", ".join(f"({x}, {y})" for y, x in ends[:5])
        more = f" and {len(ends) - 5} more" if len(ends) > 5 else ""
        yield finding(
            "warning",
            "open-ends",
            "grains",
            rel,
            f"{len(ends)} open line ends away from the crop edge (at most "
            f"{grains.MANY_OPEN_ENDS - 1} expected), at (x, y) {shown}{more}: gaps there "
            "merge grains; close them in the tracing",
            measured=len(ends),
            expected=grains.MANY_OPEN_ENDS - 1,
        )
