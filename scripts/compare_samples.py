#!/usr/bin/env python3
"""Puts sample grids side by side with a caption over each: docs/model-quality.png.

Usage: compare_samples.py OUT.png "caption=path/to/samples.png" ...
"""
import sys

from PIL import Image, ImageDraw


def main() -> None:
    out, panels = sys.argv[1], [arg.split("=", 1) for arg in sys.argv[2:]]
    grids = [(caption, Image.open(path).convert("RGB")) for caption, path in panels]
    height = max(g.height for _, g in grids)
    pad, top = 12, 34
    width = sum(g.width for _, g in grids) + pad * (len(grids) + 1)
    sheet = Image.new("RGB", (width, height + top + pad), "white")
    draw = ImageDraw.Draw(sheet)
    x = pad
    for caption, grid in grids:
        for i, line in enumerate(caption.split("|")):
            draw.text((x, 4 + 13 * i), line, fill="black")
        sheet.paste(grid, (x, top))
        x += grid.width + pad
    sheet.save(out)


if __name__ == "__main__":
    main()
