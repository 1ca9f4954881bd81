#!/usr/bin/env python3
"""The edits people apply to an image before it reaches a moderator, made with Pillow (an
implementation independent of Hallmark's own `image` crate): re-saving as JPEG or WebP, resizing
with each of Pillow's filters, resizing *and* recompressing, cropping, a one-pixel shift and an
upscale. Used by the registry test (`tests/api/verify.rs`) and by `scripts/registry_pillow.py`.

    scripts/pillow_edits.py IN_DIR OUT_DIR     # OUT_DIR/<stem>.<edit>.<jpg|webp|png> per input

Each input is read as Pillow opens it and converted to RGB first, as most software holds
pictures. Needs Pillow (in the project's venv).
"""

import io
import pathlib
import random
import sys

from PIL import Image

R = Image.Resampling


def _save(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _resize(image, factor, resample):
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), resample)


def _crop(image, share, rng):
    w, h = image.size
    cw, ch = int(w * (1 - share)), int(h * (1 - share))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((x, y, x + cw, y + ch))


def _shift(image, pixels, rng):
    w, h = image.size
    dx = pixels if rng.random() < 0.5 else -pixels
    dy = pixels if rng.random() < 0.5 else -pixels
    canvas = Image.new(image.mode, (w, h))
    canvas.paste(image, (dx, dy))
    return canvas


# name -> (extension, function(image, rng) -> bytes); the list of edits.
EDITS = {
    "jpeg90": ("jpg", lambda i, r: _save(i, "JPEG", quality=90)),
    "jpeg75": ("jpg", lambda i, r: _save(i, "JPEG", quality=75)),
    "jpeg50": ("jpg", lambda i, r: _save(i, "JPEG", quality=50)),
    "webp75": ("webp", lambda i, r: _save(i, "WEBP", quality=75)),
    "0.5x-bilinear": ("png", lambda i, r: _save(_resize(i, 0.5, R.BILINEAR), "PNG")),
    "0.5x-bicubic": ("png", lambda i, r: _save(_resize(i, 0.5, R.BICUBIC), "PNG")),
    "0.5x-lanczos": ("png", lambda i, r: _save(_resize(i, 0.5, R.LANCZOS), "PNG")),
    "0.5x-box": ("png", lambda i, r: _save(_resize(i, 0.5, R.BOX), "PNG")),
    "0.75x-bilinear": ("png", lambda i, r: _save(_resize(i, 0.75, R.BILINEAR), "PNG")),
    "0.75x-bicubic": ("png", lambda i, r: _save(_resize(i, 0.75, R.BICUBIC), "PNG")),
    "0.75x-lanczos": ("png", lambda i, r: _save(_resize(i, 0.75, R.LANCZOS), "PNG")),
    "0.75x-box": ("png", lambda i, r: _save(_resize(i, 0.75, R.BOX), "PNG")),
    "0.5x-bicubic+jpeg75": (
        "jpg", lambda i, r: _save(_resize(i, 0.5, R.BICUBIC), "JPEG", quality=75)),
    "0.5x-box+jpeg75": ("jpg", lambda i, r: _save(_resize(i, 0.5, R.BOX), "JPEG", quality=75)),
    "0.75x-bicubic+jpeg75": (
        "jpg", lambda i, r: _save(_resize(i, 0.75, R.BICUBIC), "JPEG", quality=75)),
    "crop10%+jpeg75": ("jpg", lambda i, r: _save(_crop(i, 0.1, r), "JPEG", quality=75)),
    "shift1px": ("png", lambda i, r: _save(_shift(i, 1, r), "PNG")),
    "2x-bicubic": ("png", lambda i, r: _save(_resize(i, 2.0, R.BICUBIC), "PNG")),
}

# Edits whose recall target is 95% rather than 99%.
RELAXED = {"jpeg50", "0.5x-bicubic+jpeg75", "0.5x-box+jpeg75", "0.75x-bicubic+jpeg75"}


def edited(data, seed):
    """Every edit of the image file `data`: name -> (extension, bytes)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    rng = random.Random(seed)
    return {name: (ext, make(image, rng)) for name, (ext, make) in EDITS.items()}


def main():
    source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(sorted(source.iterdir())):
        for name, (ext, data) in edited(path.read_bytes(), n).items():
            (target / f"{path.stem}.{name}.{ext}").write_bytes(data)


if __name__ == "__main__":
    main()
