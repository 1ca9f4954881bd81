#!/usr/bin/env python3
"""The ISCC Content-Code Image of image files, by the reference implementation (iscc-core), for
the bit-for-bit check of Hallmark's `io.iscc.v0` soft binding (src/fingerprint/iscc.rs,
docs/soft-binding.md).

Usage: iscc_image_code.py [--bits N] FILE...
       iscc_image_code.py [--bits N] --pixels PIXELS.json

For each FILE, one JSON object on its own line: the file, the iscc-core version, the 1024 grey
pixels the image normalises to, the ISCC-UNIT (`ISCC:...`) and `value`: standard base64 (padded) of
the ISCC-SEQ holding that one unit, as IEP-0020 puts it in a soft-binding query. The normalisation
is iscc-sdk's (`image_normalize`), done here with Pillow in the same steps: EXIF orientation, a
white background under transparency, the uniform border trimmed (the top-left pixel's colour), grey
(`convert("L")`), 32 x 32 by Pillow's bicubic filter.
With --pixels, PIXELS.json is a list of 1024-value pixel lists, already normalised: one object per
list, without the image steps.
Exits 3 when iscc-core or Pillow is not importable (scripts/setup.sh installs both).
"""
import argparse
import base64
import json
import sys

try:
    import iscc_core as ic
    from PIL import Image, ImageChops, ImageOps
except ImportError as error:  # pragma: no cover - the message is the point
    print(
        f"iscc-core or Pillow is not importable by {sys.executable}: {error}. "
        "Run scripts/setup.sh (pip install iscc-core).",
        file=sys.stderr,
    )
    sys.exit(3)


def fill_transparency(img):
    """An RGB image, transparency over white (iscc-sdk `image_fill_transparency`)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def trim_border(img):
    """The image without its uniform border, the top-left pixel's colour (iscc-sdk
    `image_trim_border`)."""
    background = Image.new(img.mode, img.size, img.getpixel((0, 0)))
    diff = ImageChops.difference(img, background)
    diff = ImageChops.add(diff, diff)
    bbox = diff.getbbox()
    if bbox != (0, 0) + img.size:
        return img.crop(bbox)
    return img


def normalize(path):
    """The 1024 grey pixels of iscc-sdk's `image_normalize`."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        img = fill_transparency(img)
        img = trim_border(img)
        img = img.convert("L")
        small = img.resize((32, 32), Image.Resampling.BICUBIC)
        data = small.get_flattened_data() if hasattr(small, "get_flattened_data") else small.getdata()
        return [int(p) for p in data]


def describe(pixels, bits):
    code = ic.gen_image_code_v0(pixels, bits=bits)["iscc"]
    seq = ic.encode_seq([code]) if hasattr(ic, "encode_seq") else ic.decode_base32(code[5:])
    return {
        "iscc_core": ic.__version__,
        "pixels": pixels,
        "iscc": code,
        "value": base64.b64encode(seq).decode("ascii"),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*")
    parser.add_argument("--bits", type=int, default=256)
    parser.add_argument("--pixels")
    args = parser.parse_args()
    if args.pixels:
        with open(args.pixels, encoding="utf-8") as f:
            for pixels in json.load(f):
                print(json.dumps(describe(pixels, args.bits)))
    for path in args.files:
        print(json.dumps({"file": path, **describe(normalize(path), args.bits)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
