#!/usr/bin/env python3
"""Builds the emoji dataset from the npm packages installed by build_dataset.sh.

Output (OUT, default .cache/emoji/dataset):
  images/<style>/<HEXCODE>_<k>.png   64x64 RGB; k=0 clean (white, full size, centred), k>=1
                                     augmented (light background, scale 0.6-1, random offset)
  shapes/NNNNN.png                   the shapes world (imagegen-dataset --size 64), if built
  manifest.jsonl                     one row per (image, caption): image, concept, style,
                                     caption, language, kind, split ("train" | "held_out")
  concepts.json                      every concept: hexcode, labels, tags, captions by split
  LICENSES.md, licenses/             the images' licences and attribution
Deterministic: the same sources, seed and options give byte-identical files.
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import emoji_data as ed  # noqa: E402

ATTRIBUTION = """\
# Licences and attribution of the emoji dataset

- **Noto Emoji** images (style `google`, from the npm package `emoji-datasource-google`):
  Copyright Google Inc., licensed under the Apache License 2.0
  (https://github.com/googlefonts/noto-emoji/blob/main/LICENSE; text in licenses/Apache-2.0.txt).
- **Twemoji** images (style `twitter`, from the npm package `emoji-datasource-twitter`):
  Copyright Twitter, Inc. and other contributors, licensed under CC-BY 4.0
  (https://creativecommons.org/licenses/by/4.0/; graphics licence
  https://github.com/jdecked/twemoji/blob/main/LICENSE-GRAPHICS). Attribution: "Emoji graphics
  by Twemoji (https://github.com/jdecked/twemoji), CC-BY 4.0". The images here are modified:
  composited on a background, scaled and moved.
- The emoji index `emoji.json` (emoji-datasource, Copyright (c) 2013 Cal Henderson): MIT
  (licenses/emoji-datasource-MIT.txt).
- Labels and tags (`emojibase-data`, Copyright (c) 2017-2019 Miles Johnson): MIT
  (licenses/emojibase-MIT.txt). They derive from the Unicode CLDR annotations
  (Unicode License v3).
- The shapes world (`shapes/`) is rendered by imagegen itself.
Not used: the Apple and Facebook sets (not licensed for this), OpenMoji (CC-BY-SA: share-alike).
"""


def write_licences(sources, out):
    (out / "LICENSES.md").write_text(ATTRIBUTION)
    lic = out / "licenses"
    lic.mkdir(exist_ok=True)
    shutil.copyfile(sources / "emoji-datasource-google" / "LICENSE",
                    lic / "emoji-datasource-MIT.txt")
    shutil.copyfile(sources / "emojibase-data" / "LICENSE", lic / "emojibase-MIT.txt")
    apache = pathlib.Path("/usr/share/common-licenses/Apache-2.0")
    if not apache.exists():
        sys.exit(f"build_dataset: {apache} missing (Debian's base-files ships it)")
    shutil.copyfile(apache, lic / "Apache-2.0.txt")


def write_emoji(concepts, sources, out, augmented, seed, manifest):
    for style in ed.STYLES:
        (out / "images" / style).mkdir(parents=True, exist_ok=True)
        for concept in concepts:
            sprite = ed.source_image(sources, style, concept)
            placements = ed.placements_for(concept, style, augmented, seed)
            for k, placement in enumerate(placements):
                rel = f"images/{style}/{concept.hexcode}_{k}.png"
                ed.render(sprite, placement).save(out / rel, optimize=False)
                for caption, (language, kind, split) in concept.captions.items():
                    manifest.append({"image": rel, "concept": concept.hexcode, "style": style,
                                     "caption": caption, "language": language, "kind": kind,
                                     "split": split})


def write_shapes(binary, out, count, held_out_count, seed, manifest):
    """The shapes world through the bundled model's own generator (tools/dataset_main.cc):
    colour/count/position captions; its held-out colour x shape pairs are split held_out."""
    for split, n, flags in (("train", count, []), ("held_out", held_out_count, ["--held-out"])):
        rel_dir = f"shapes/{split}"
        subprocess.run([binary, "--out", str(out / rel_dir), "--count", str(n), "--size",
                        str(ed.SIZE), "--seed", str(seed), *flags], check=True,
                       stderr=subprocess.DEVNULL)
        for line in (out / rel_dir / "captions.jsonl").read_text().splitlines():
            row = json.loads(line)
            manifest.append({"image": f"{rel_dir}/{row['file']}", "concept": "shapes",
                             "style": "shapes", "caption": row["caption"], "language": "en",
                             "kind": "shapes", "split": split,
                             "scene": {k: row[k] for k in ("colour", "shape", "count",
                                                           "position", "size", "background")}})


def concept_index(concepts):
    rows = []
    for c in concepts:
        by_split = {"train": [], "held_out": []}
        for caption, (language, kind, split) in c.captions.items():
            by_split[split].append({"caption": caption, "language": language, "kind": kind})
        rows.append({"hexcode": c.hexcode, "category": c.category, "en_label": c.en_label,
                     "nb_label": c.nb_label, "en_tags": c.en_tags, "nb_tags": c.nb_tags,
                     **by_split})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=pathlib.Path, default=ed.DEFAULT_SOURCES)
    ap.add_argument("--out", type=pathlib.Path, default=ed.ROOT / ".cache/emoji/dataset")
    ap.add_argument("--augmented", type=int, default=2, help="augmented renderings per style")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int,
                    help="render only the first N concepts (tests; concepts.json lists all)")
    ap.add_argument("--include", default="",
                    help="with --limit: also render these hexcodes (comma-separated)")
    ap.add_argument("--shapes-bin", help="imagegen-dataset binary (default: none, no shapes)")
    ap.add_argument("--shapes-count", type=int, default=4000)
    ap.add_argument("--shapes-held-out", type=int, default=500)
    args = ap.parse_args()

    concepts = ed.load_concepts(args.sources)  # captions depend on all concepts
    rendered = concepts
    if args.limit:
        extra = set(filter(None, args.include.upper().split(",")))
        rendered = [c for i, c in enumerate(concepts) if i < args.limit or c.hexcode in extra]
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    manifest = []
    write_emoji(rendered, args.sources, args.out, args.augmented, args.seed, manifest)
    if args.shapes_bin:
        write_shapes(args.shapes_bin, args.out, args.shapes_count, args.shapes_held_out,
                     args.seed, manifest)
    with open(args.out / "manifest.jsonl", "w") as f:
        for row in manifest:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    (args.out / "concepts.json").write_text(
        json.dumps(concept_index(concepts), ensure_ascii=False, indent=1) + "\n")
    write_licences(args.sources, args.out)
    held = sum(r["split"] == "held_out" for r in manifest)
    print(f"build_dataset: {len(concepts)} concepts ({len(rendered)} rendered), "
          f"{len(manifest)} rows ({held} held out) in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
