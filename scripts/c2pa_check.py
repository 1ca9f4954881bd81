#!/usr/bin/env python3
"""Independent check of a Hallmark-signed image with c2pa-python (the C2PA SDK's Python binding).

Usage: c2pa_check.py FILE [--anchors PEM] [--manifest STORE.c2pa]

Prints one JSON object: the validation state, the failure codes, the claim generator, the
digital source type of the c2pa.created action, Hallmark's org.hallmark.generation assertion, the
first soft-binding assertion (`soft_binding`) and every one with its label and instance
(`soft_bindings`; a CBOR
byte string value, as in `io.iscc.v0`, reads as a list of byte values).
With --anchors, that PEM bundle (Hallmark's root CA) is trusted, so a good file is "Trusted".
With --rubric RUBRIC.yml (repeatable), the C2PA Conformance Program's asset-rubric evaluator
(third_party/c2pa-conformance/, unmodified) judges the file's crJSON, as c2pa-python's
`Reader.crjson()` writes it, against that rubric: `rubrics` lists, per rubric, the traits that
failed and warned (with their report text) and how many passed. --spec-version is the
specification version the rubric expects (its own default otherwise). With --crjson DOC.json the
rubrics judge that crJSON document instead (another validator's findings on FILE, such as
`hallmark verify --crjson`), so the evaluator checks the validator as well as the asset.
With --manifest, the manifest store is read from that file (a sidecar, e.g. one fetched from a
Soft Binding Resolution API) and validated against FILE, instead of the store embedded in FILE.
Exits 3 with a message when c2pa-python is not installed (scripts/setup.sh installs it).
"""
import argparse
import contextlib
import io
import json
import pathlib
import sys

try:
    import c2pa
except ImportError as error:  # pragma: no cover - the message is the point
    print(
        f"c2pa-python is not importable by {sys.executable}: {error}. "
        "Run scripts/setup.sh (pip install c2pa-python==0.38.1).",
        file=sys.stderr,
    )
    sys.exit(3)

THIRD_PARTY = pathlib.Path(__file__).resolve().parent.parent / "third_party"

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def reader_context(anchors_path):
    """A reader context that never fetches remote manifests and trusts the PEM bundle at
    anchors_path (when given)."""
    settings = {"verify": {"remote_manifest_fetch": False}}
    if anchors_path:
        with open(anchors_path, encoding="ascii") as f:
            settings["trust"] = {"user_anchors": f.read()}
    return c2pa.Context.from_dict(settings)


def judge(crjson, rubric, spec_version):
    """The Conformance Program's evaluator on a crJSON document: the failed and warned traits
    (trait, report text) and the number passed."""
    for folder in ("json-formula-py", "c2pa-conformance"):
        if str(THIRD_PARTY / folder) not in sys.path:
            sys.path.insert(0, str(THIRD_PARTY / folder))
    import tempfile

    import c2pa_conformance_rubric_evaluator as evaluator

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(crjson)
    # The evaluator prints its progress on stderr and the report on stdout: keep both out of ours.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        report = evaluator.evaluate_asset_against_rubric(rubric, f.name, spec_version=spec_version)
    pathlib.Path(f.name).unlink()

    def traits(outcome):
        return [
            {"trait": t.get("trait"), "text": t.get("reportText")}
            for items in report.get(outcome, {}).values()
            for t in items
        ]

    return {
        "rubric": report.get("rubricName"),
        "rubric_version": report.get("rubricVersion"),
        "failed": traits("false"),
        "warnings": traits("warning"),
        "passed": len(traits("true")),
    }


def mime_of(path):
    return next((m for ext, m in MIME.items() if path.lower().endswith(ext)), None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--anchors")
    parser.add_argument("--manifest")
    parser.add_argument("--rubric", action="append", default=[])
    parser.add_argument("--spec-version")
    parser.add_argument("--crjson")
    args = parser.parse_args()
    context = reader_context(args.anchors)
    mime = mime_of(args.file)
    sidecar = None
    if args.manifest:
        with open(args.manifest, "rb") as f:
            sidecar = f.read()
    with open(args.file, "rb") as stream:
        reader = c2pa.Reader(mime, stream, sidecar, context)
        store = json.loads(reader.json())
        state = reader.get_validation_state()
        crjson = reader.crjson() if args.rubric else None
    if args.crjson:
        with open(args.crjson, encoding="utf-8") as f:
            crjson = f.read()
    active = store["manifests"][store["active_manifest"]]
    results = store.get("validation_results", {}).get("activeManifest", {})
    out = {
        "c2pa_sdk": c2pa.sdk_version(),
        "validation_state": state,
        "failures": [s.get("code") for s in results.get("failure", [])],
        "active_manifest": store["active_manifest"],
        "title": active.get("title"),
        "claim_generator": " ".join(
            f"{g.get('name')}/{g.get('version')}" for g in active.get("claim_generator_info", [])
        ),
        "digital_source_type": None,
        "hallmark": None,
        "signature_alg": active.get("signature_info", {}).get("alg"),
        "signer": active.get("signature_info", {}).get("common_name"),
        "soft_binding": None,
        "soft_bindings": [],
        # Every action of the active manifest, in order, and its ingredients (an edit's upload):
        # the relationship, and the manifest the ingredient brought along, if any.
        "actions": [],
        "ingredients": [
            {
                "title": i.get("title"),
                "relationship": i.get("relationship"),
                "active_manifest": i.get("active_manifest"),
            }
            for i in active.get("ingredients", [])
        ],
        "manifests": len(store["manifests"]),
    }
    for assertion in active.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                out["actions"].append(
                    {
                        "action": action.get("action"),
                        "digitalSourceType": action.get("digitalSourceType"),
                        "softwareAgent": action.get("softwareAgent"),
                        "parameters": action.get("parameters"),
                    }
                )
                if action.get("action") == "c2pa.created":
                    out["digital_source_type"] = action.get("digitalSourceType")
        elif label == "org.hallmark.generation":
            out["hallmark"] = assertion.get("data")
        elif label.startswith("c2pa.soft-binding"):
            # The first is Hallmark's own fingerprint; all of them, labelled, in `soft_bindings`.
            if out["soft_binding"] is None:
                out["soft_binding"] = assertion.get("data")
            out["soft_bindings"].append(
                {"label": label, "instance": assertion.get("instance"), **assertion.get("data", {})}
            )
    out["rubrics"] = [judge(crjson, rubric, args.spec_version) for rubric in args.rubric]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
