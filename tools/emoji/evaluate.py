#!/usr/bin/env python3
"""Prompt adherence of a text-to-image model on the emoji world, judged by the checker.

For a deterministic sample of concepts (the croissant always among them), generates each
concept's training phrasings (English label, Norwegian label) and every held-out phrasing, with
several seeds, through --generate-cmd, and asks the checker which concept each image shows.
Reports top-1/top-5 concept accuracy by split, language and kind, as JSON on stdout.

  tools/emoji/evaluate.py --generate-cmd \\
      'build/imagegen generate --model local "{prompt}" --seed {seed} --out {out}'

The command is split like a shell line once, then {prompt}, {seed} and {out} are replaced in
each word (so a prompt with spaces stays one argument; no shell runs). A command that fails or
writes no image counts as a miss and is reported under "errors".
"""
import argparse
import json
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check  # noqa: E402
import checker_net as cn  # noqa: E402
import emoji_data as ed  # noqa: E402

ALWAYS = ("1F950",)  # the seed's demo prompt, "A croissant"


def pick_concepts(concepts, count, salt):
    """The ALWAYS concepts, then a hash-ordered sample of concepts that have held-out phrasings."""
    eligible = [c for c in concepts if c["held_out"] and c["hexcode"] not in ALWAYS]
    eligible.sort(key=lambda c: ed.stable_fraction("evaluate", salt, c["hexcode"]))
    first = [c for c in concepts if c["hexcode"] in ALWAYS]
    return (first + eligible)[:count]


def prompts_for(concept):
    """(caption, language, kind, split) to generate for one concept."""
    out = []
    train = {t["caption"]: t for t in concept["train"]}
    for caption in (ed.fill("{a} {label}", concept["en_label"]), concept["nb_label"]):
        if caption in train:
            t = train[caption]
            out.append((caption, t["language"], t["kind"], "train"))
    out += [(h["caption"], h["language"], h["kind"], "held_out") for h in concept["held_out"]]
    return out


def generate(template, prompt, seed, out):
    argv = [w.replace("{prompt}", prompt).replace("{seed}", str(seed)).replace("{out}", str(out))
            for w in shlex.split(template)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{argv[0]}: {e}"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    if not pathlib.Path(out).is_file():
        return f"no image written to {out}"
    return None


def summarise(rows):
    groups = {}
    for r in rows:
        for key in (r["split"], f"{r['split']}/{r['language']}",
                    f"{r['split']}/{r['language']}/{r['kind']}"):
            g = groups.setdefault(key, {"n": 0, "top1": 0, "top5": 0})
            g["n"] += 1
            g["top1"] += r["top1"]
            g["top5"] += r["top5"]
    return {k: {"n": g["n"], "top1": round(g["top1"] / g["n"], 4),
                "top5": round(g["top5"] / g["n"], 4)} for k, g in sorted(groups.items())}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate-cmd", required=True)
    ap.add_argument("--concepts-json", type=pathlib.Path,
                    default=ed.ROOT / ".cache/emoji/dataset/concepts.json")
    ap.add_argument("--model-dir", type=pathlib.Path, default=cn.DEFAULT_DIR)
    ap.add_argument("--concepts", type=int, default=20, help="how many concepts to sample")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--draw", default="0", help="which sample of concepts (a salt)")
    ap.add_argument("--trained-on", type=pathlib.Path,
                    help="a model's training.json: sample only the concepts it lists in "
                         "concept_list (a model trained on a subset)")
    ap.add_argument("--save", type=pathlib.Path, help="keep the images here")
    ap.add_argument("--details", type=pathlib.Path, help="write every result here (JSONL)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, config = cn.load(args.model_dir)
    concepts = json.loads(args.concepts_json.read_text())
    if args.trained_on:
        trained = set(json.loads(args.trained_on.read_text()).get("concept_list", []))
        if not trained:
            raise SystemExit(f"evaluate: {args.trained_on} lists no concept_list")
        concepts = [c for c in concepts if c["hexcode"] in trained]
    concepts = pick_concepts(concepts, args.concepts, args.draw)
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = args.save or pathlib.Path(tempfile.mkdtemp(prefix="emoji-eval-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows, errors, start = [], [], time.time()
    jobs = [(c, p, s) for c in concepts for p in prompts_for(c) for s in seeds]
    for n, (concept, (caption, language, kind, split), seed) in enumerate(jobs):
        out = workdir / f"{n:05d}.png"
        error = generate(args.generate_cmd, caption, seed, out)
        row = {"concept": concept["hexcode"], "prompt": caption, "language": language,
               "kind": kind, "split": split, "seed": seed, "image": str(out)}
        if error:
            errors.append({**row, "error": error})
            row.update(top1=0, top5=0, top=[])
        else:
            top = check.check_images(model, config, [out], 5)[0].get("top", [])
            codes = [t["hexcode"] for t in top]
            row.update(top1=int(codes[:1] == [concept["hexcode"]]),
                       top5=int(concept["hexcode"] in codes), top=codes)
        rows.append(row)
        print(f"evaluate: {n + 1}/{len(jobs)} {caption!r} seed {seed}: "
              f"{'error' if error else row['top'][:1]}", file=sys.stderr)
    if args.details:
        args.details.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    report = {"command": args.generate_cmd, "concepts": len(concepts), "seeds": seeds,
              "images": len(rows), "seconds": round(time.time() - start, 1),
              "accuracy": summarise(rows), "errors": len(errors),
              "first_errors": errors[:3]}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 1 if errors and len(errors) == len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
