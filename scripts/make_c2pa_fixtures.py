#!/usr/bin/env python3
"""Makes other producers' Content Credentials with c2pa-python (the C2PA SDK's own binding), so
the project's tests of reading them stand on files the repository can make itself.

    make_c2pa_fixtures.py SOURCE.jpg OUT_DIR --chain A.pem --key A.key \
        --other-chain B.pem --other-key B.key [--hallmark-image SIGNED.png] [--nested N]

A and B are two signing identities (PEM certificate chain, leaf first, and its PKCS#8 Ed25519
key); the tests trust A's root and not B's. Writes to OUT_DIR:

- valid.jpg       signed by A; a c2pa.created action declaring trainedAlgorithmicMedia
- tampered.jpg    valid.jpg with bytes of its image data changed after signing
- ingredient.jpg  signed by A; valid.jpg opened as its parent ingredient, then edited
- untrusted.jpg   signed by B, like valid.jpg
- history.jpg     a three-step history signed by B: valid.jpg (AI-created, by A) opened, cropped
                  and colour-adjusted into ingredient-like edit by A, then published by B with a
                  second, placed component (untrusted.jpg)
- hallmark-edited.png   (with --hallmark-image) a Hallmark-signed PNG opened as the parent
                  ingredient, cropped and colour-adjusted, signed again by A
- nested.jpg      (with --nested N) N edits, each opening the previous as its parent

Exits 3 with a message when c2pa-python is not installed (scripts/setup.sh installs it).
"""
import argparse
import json
import os
import sys

# c2pa_check.py (beside this script) imports c2pa-python, or exits 3 saying how to install it.
from c2pa_check import c2pa

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def signer(chain_path, key_path):
    with open(chain_path, "rb") as f:
        chain = f.read()
    with open(key_path, "rb") as f:
        key = f.read()
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ED25519, chain, key, None))


def manifest(title, actions):
    return {
        "claim_generator_info": [{"name": "fixture-maker", "version": "1.0"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }


def created(title):
    return manifest(title, [{"action": "c2pa.created", "digitalSourceType": AI}])


def sign(builder, with_signer, source, dest, mime="image/jpeg"):
    with open(source, "rb") as src, open(dest, "wb+") as dst:
        builder.sign(with_signer, mime, src, dst)


def edit(title, parent_path, parent_title, actions, mime="image/jpeg", components=()):
    """A builder for an edit of parent_path: opened as the parent ingredient, then `actions`;
    `components` are (path, title) pairs placed into it."""
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    steps = [opened] + [{"action": a} for a in actions]
    for index, (_, component_title) in enumerate(components):
        steps.append({"action": "c2pa.placed", "parameters": {"ingredientIds": [f"c{index}"]},
                      "description": f"placed {component_title}"})
    builder = c2pa.Builder(json.dumps(manifest(title, steps)))
    with open(parent_path, "rb") as parent:
        builder.add_ingredient(
            json.dumps({"title": parent_title, "relationship": "parentOf", "label": "parent"}),
            mime,
            parent,
        )
    for index, (path, component_title) in enumerate(components):
        with open(path, "rb") as component:
            builder.add_ingredient(
                json.dumps({"title": component_title, "relationship": "componentOf",
                            "label": f"c{index}"}),
                "image/jpeg",
                component,
            )
    return builder


def tamper(path, dest):
    """Changes bytes inside the entropy-coded data after the last start-of-scan marker."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    sos = data.rfind(b"\xff\xda")  # the main image's scan (a thumbnail may come first)
    if sos < 0:
        raise SystemExit(f"{path}: no start-of-scan marker")
    header = int.from_bytes(data[sos + 2 : sos + 4], "big")
    at = sos + 2 + header + 16
    for i in range(at, min(at + 8, len(data) - 2)):
        if data[i] != 0xFF and data[i] ^ 0x55 != 0xFF:
            data[i] ^= 0x55
    with open(dest, "wb") as f:
        f.write(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("out_dir")
    parser.add_argument("--chain", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--other-chain", required=True)
    parser.add_argument("--other-key", required=True)
    parser.add_argument("--hallmark-image")
    parser.add_argument("--nested", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    ours, theirs = signer(args.chain, args.key), signer(args.other_chain, args.other_key)

    sign(c2pa.Builder(json.dumps(created("valid.jpg"))), ours, args.source, out("valid.jpg"))
    tamper(out("valid.jpg"), out("tampered.jpg"))

    # An edit of valid.jpg: "opened" names the parent ingredient, then "edited".
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    edited = c2pa.Builder(
        json.dumps(manifest("ingredient.jpg", [opened, {"action": "c2pa.edited"}]))
    )
    with open(out("valid.jpg"), "rb") as parent:
        edited.add_ingredient(
            json.dumps({"title": "valid.jpg", "relationship": "parentOf", "label": "parent"}),
            "image/jpeg",
            parent,
        )
    sign(edited, ours, out("valid.jpg"), out("ingredient.jpg"))

    sign(c2pa.Builder(json.dumps(created("untrusted.jpg"))), theirs, args.source, out("untrusted.jpg"))
    made = ["valid.jpg", "tampered.jpg", "ingredient.jpg", "untrusted.jpg"]

    # valid.jpg -> edited by A (cropped, colour adjusted) -> published by B with a component.
    sign(edit("edit.jpg", out("valid.jpg"), "valid.jpg", ["c2pa.cropped", "c2pa.color_adjustments"]),
         ours, out("valid.jpg"), out("edit.jpg"))
    sign(edit("history.jpg", out("edit.jpg"), "edit.jpg", ["c2pa.published"],
              components=[(out("untrusted.jpg"), "untrusted.jpg")]),
         theirs, out("edit.jpg"), out("history.jpg"))
    os.remove(out("edit.jpg"))
    made.append("history.jpg")

    if args.hallmark_image:
        sign(edit("hallmark-edited.png", args.hallmark_image, "hallmark.png",
                  ["c2pa.cropped", "c2pa.color_adjustments"], mime="image/png"),
             ours, args.hallmark_image, out("hallmark-edited.png"), mime="image/png")
        made.append("hallmark-edited.png")

    if args.nested > 0:
        previous, title = out("valid.jpg"), "valid.jpg"
        for level in range(args.nested):
            step = out(f"nested-{level}.jpg")
            sign(edit(f"nested-{level}.jpg", previous, title, ["c2pa.edited"]), ours, previous, step)
            if previous != out("valid.jpg"):
                os.remove(previous)
            previous, title = step, f"nested-{level}.jpg"
        os.replace(previous, out("nested.jpg"))
        made.append("nested.jpg")
    print(json.dumps({"made": made}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
