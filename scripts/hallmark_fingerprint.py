#!/usr/bin/env python3
"""Hallmark's soft-binding fingerprint (`org.hallmark.fingerprint.1`), computed from the pixels by
an implementation written from docs/soft-binding.md alone, in plain Python (no numpy, no PIL), as a
third party would: the value to send to a C2PA Soft Binding Resolution API's `byBinding`.

Usage: hallmark_fingerprint.py IMAGE.png

Prints {"alg": "org.hallmark.fingerprint.1", "value": "<base64>", "hex": "<16 hex digits>"}.
Reads 8-bit PNG (grey, grey+alpha, RGB, RGBA; not interlaced, not palette), which is what Hallmark
serves.
"""
import base64
import json
import math
import struct
import sys
import zlib

SIDE = 16  # the grey image is resampled to 16 x 16
KEEP = 8   # the 8 x 8 lowest-frequency DCT coefficients make the 64 bits


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        at += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise SystemExit(f"{path}: only 8-bit, non-interlaced grey/RGB(A) PNG is read here")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prior, at = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prior[i]
            corner = prior[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(line)
        prior = line
    grey = []
    for line in rows:
        out = []
        for x in range(width):
            px = line[x * channels:(x + 1) * channels]
            if channels <= 2:
                out.append(px[0])
            else:  # ITU-R BT.709 luma with integer weights, truncated
                out.append((2126 * px[0] + 7152 * px[1] + 722 * px[2]) // 10000)
        grey.append(out)
    return grey


def lanczos3(x):
    if x == 0:
        return 1.0
    if abs(x) >= 3:
        return 0.0
    px = math.pi * x
    return 3 * math.sin(px) * math.sin(px / 3) / (px * px)


def resample(line, size):
    """One dimension: Lanczos3 widened by the scale factor when shrinking, weights normalised."""
    ratio = len(line) / size
    scale = max(ratio, 1.0)
    support = 3.0 * scale
    out = []
    for i in range(size):
        centre = (i + 0.5) * ratio
        left = max(int(math.floor(centre - support)), 0)
        right = min(int(math.ceil(centre + support)), len(line))
        weights = [lanczos3((j + 0.5 - centre) / scale) for j in range(left, right)]
        total = sum(weights)
        out.append(sum(w * line[j] for w, j in zip(weights, range(left, right))) / total)
    return out


def resize(grey, size):
    columns = [resample([row[x] for row in grey], size) for x in range(len(grey[0]))]
    tall = [[columns[x][y] for x in range(len(columns))] for y in range(size)]
    return [[min(max(round(v), 0), 255) for v in resample(row, size)] for row in tall]


def dct_2d(values):
    n = len(values)
    basis = [[math.cos(math.pi * k * (2 * i + 1) / (2 * n)) for i in range(n)] for k in range(n)]
    rows = [[sum(v * b for v, b in zip(row, basis[k])) for k in range(n)] for row in values]
    return [[sum(rows[i][u] * basis[v][i] for i in range(n)) for u in range(n)] for v in range(n)]


def fingerprint(path):
    coefficients = dct_2d(resize(read_png(path), SIDE))
    low = [coefficients[v][u] for v in range(KEEP) for u in range(KEEP)]
    mean = sum(low) / len(low)
    bits = [c >= mean for c in low]
    packed = bytes(sum(1 << b for b in range(8) if bits[byte * 8 + b]) for byte in range(8))
    return packed


def main():
    packed = fingerprint(sys.argv[1])
    print(json.dumps({
        "alg": "org.hallmark.fingerprint.1",
        "value": base64.b64encode(packed).decode("ascii"),
        "hex": packed.hex(),
    }))


if __name__ == "__main__":
    main()
