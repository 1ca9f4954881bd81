#!/usr/bin/env python3
"""What the reference reader (c2pa-python, the C2PA SDK's Python binding) sees in a file, as the
plain tree that Hallmark's conformance test compares with its own report.

Usage: c2pa_tree.py [--anchors PEM] [--reader python|c2patool] FILE...

`--reader c2patool` reads each file with the c2patool command (0.27.22, `cargo install c2patool
--locked`; found on PATH or at $C2PATOOL) instead of the Python binding: the same JSON, the same
tree.

Prints one JSON object per file, keyed by the path:

    {"state": "trusted" | "valid_untrusted" | "invalid" | "no_manifest" | "error",
     "error": message or null,
     "failures": [active manifest failure codes, ingredient deltas included, sorted],
     "manifests": [MANIFEST, ...], "ingredients": [INGREDIENT, ...]}
    MANIFEST = {"path": "", "claim_generator": "name/version ...", "actions": ["c2pa.opened", ...],
                "source_types": [digital source types in action order]}
    INGREDIENT = {"path": "0", "title", "relationship", "state", "failures", "has_manifest"}

The tree is flat (deep chains would nest past JSON parsers' depth limits): the active manifest's
path is "", its ingredient i is at "i", that ingredient's own manifest is at "i" too, and its
ingredients at "i/j". An ingredient's state follows from its validation codes as recorded when it
was ingested, updated by this reader's `ingredientDeltas` (a success now cancels the matching
failure then, e.g. signingCredential.trusted cancels signingCredential.untrusted; a failure now is
added): any failure other than signingCredential.untrusted is "invalid", that one alone is
"valid_untrusted", none is "trusted"; an ingredient without a manifest of its own is
"no_manifest". Written from the C2PA specification's JSON (the reader's `json()`), not from
Hallmark's code.
Exits 3 when c2pa-python is not installed (scripts/setup.sh installs it).
"""
import argparse
import json
import os
import subprocess
import sys

from c2pa_check import c2pa, mime_of, reader_context

STATES = {"Trusted": "trusted", "Valid": "valid_untrusted", "Invalid": "invalid"}
MAX_DEPTH = 64


def codes(statuses):
    return sorted({s.get("code") for s in statuses or [] if s.get("code")})


def generator(manifest):
    infos = manifest.get("claim_generator_info") or []
    names = []
    for info in infos:
        name = info.get("name")
        if name is None:
            continue
        names.append(f"{name}/{info['version']}" if info.get("version") else name)
    return " ".join(names) if names else manifest.get("claim_generator")


def ingredient_codes(ingredient, delta):
    results = ingredient.get("validation_results")
    if results is not None:
        failures = set(codes((results.get("activeManifest") or {}).get("failure")))
    else:
        # Ingredient v1/v2: one status list, successes and failures together.
        success = (".validated", ".match", ".trusted", ".accessible")
        failures = {s.get("code") for s in ingredient.get("validation_status") or []
                    if s.get("code") and not s["code"].endswith(success)}
    if delta:
        now_ok = codes(delta.get("success"))
        for code in list(failures):
            cancelled = any(ok == code or (ok.endswith(".trusted") and code.endswith(".untrusted")
                                           and ok[:-len(".trusted")] == code[:-len(".untrusted")])
                            for ok in now_ok)
            if cancelled:
                failures.discard(code)
        failures |= set(codes(delta.get("failure")))
    return sorted(failures)


def state_of(failures):
    if any(code != "signingCredential.untrusted" for code in failures):
        return "invalid"
    return "valid_untrusted" if failures else "trusted"


def walk(store, deltas, label, path, depth, on_path, out):
    manifest = store["manifests"].get(label)
    if manifest is None:
        return
    actions, source_types = [], []
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions", []):
                actions.append(action.get("action"))
                if action.get("digitalSourceType"):
                    source_types.append(action["digitalSourceType"])
    out["manifests"].append({"path": path, "claim_generator": generator(manifest),
                             "actions": actions, "source_types": source_types})
    for index, ingredient in enumerate(manifest.get("ingredients", [])):
        child = f"{path}/{index}" if path else str(index)
        uri = f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ingredient.get('label')}"
        failures = ingredient_codes(ingredient, deltas.get(uri))
        inner = ingredient.get("active_manifest")
        walked = bool(inner) and depth < MAX_DEPTH and inner not in on_path \
            and inner in store["manifests"]
        out["ingredients"].append({
            "path": child,
            "title": ingredient.get("title"),
            "relationship": ingredient.get("relationship"),
            "state": state_of(failures) if inner or failures else "no_manifest",
            "failures": failures,
            "has_manifest": walked,
        })
        if walked:
            walk(store, deltas, inner, child, depth + 1, on_path | {inner}, out)


def tree(store, state):
    """The flat tree of a reader's JSON store, for either reader."""
    out = {"state": None, "error": None, "failures": [], "manifests": [], "ingredients": []}
    active = store.get("active_manifest")
    if not active:
        out["state"] = "no_manifest"
        return out
    results = store.get("validation_results") or {}
    failures = set(codes((results.get("activeManifest") or {}).get("failure")))
    for delta in results.get("ingredientDeltas") or []:
        failures |= set(codes((delta.get("validationDeltas") or {}).get("failure")))
    out["state"] = STATES.get(state, str(state))
    out["failures"] = sorted(failures)
    deltas = {d.get("ingredientAssertionURI"): d.get("validationDeltas") or {}
              for d in results.get("ingredientDeltas") or []}
    walk(store, deltas, active, "", 0, {active}, out)
    return out


def read_with_c2patool(path, anchors):
    tool = os.environ.get("C2PATOOL", "c2patool")
    command = [tool, path] + (["trust", "--trust_anchors", anchors] if anchors else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip().splitlines()
        message = text[0] if text else f"exit {done.returncode}"
        lowered = message.lower()
        state = ("remote" if "remote manifest" in lowered
                 else "no_manifest" if "no claim found" in lowered or "jumbf" in lowered
                 else "error")
        return {"state": state, "error": message, "failures": [], "manifests": [],
                "ingredients": []}
    store = json.loads(done.stdout)
    return tree(store, store.get("validation_state"))


def read(path, context):
    mime = mime_of(path)
    out = {"state": None, "error": None, "failures": [], "manifests": [], "ingredients": []}
    try:
        with open(path, "rb") as stream:
            reader = c2pa.Reader(mime, stream, None, context)
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except Exception as error:  # the reader's word for "no manifest" is an exception
        text = str(error)
        no_manifest = "JumbfNotFound" in text or "ManifestNotFound" in text or "no JUMBF" in text
        out["state"] = "no_manifest" if no_manifest else "error"
        out["error"] = text
        return out
    return tree(store, state)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--anchors")
    parser.add_argument("--reader", choices=["python", "c2patool"], default="python")
    args = parser.parse_args()
    if args.reader == "c2patool":
        print(json.dumps({path: read_with_c2patool(path, args.anchors) for path in args.files}))
        return 0
    context = reader_context(args.anchors)
    print(json.dumps({path: read(path, context) for path in args.files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
