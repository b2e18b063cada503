"""A stand-in text-to-image model for tests of tools/emoji/evaluate.py: draws the dataset's own
rendering of the concept a prompt names (looked up in concepts.json), at a seeded placement, or
always the same concept with --always HEXCODE (a model that ignores the prompt).

  python emoji_oracle.py CONCEPTS_JSON PROMPT SEED OUT [--always HEXCODE]
"""
import argparse
import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "emoji"))
import emoji_data as ed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("concepts_json", type=pathlib.Path)
    ap.add_argument("prompt")
    ap.add_argument("seed", type=int)
    ap.add_argument("out")
    ap.add_argument("--always")
    args = ap.parse_args()
    rows = json.loads(args.concepts_json.read_text())
    wanted = args.always
    if not wanted:
        wanted = next(r["hexcode"] for r in rows
                      if any(c["caption"] == args.prompt for c in r["train"] + r["held_out"]))
    concept = next(c for c in ed.load_concepts() if c.hexcode == wanted)
    placement = ed.random_placement(random.Random(args.seed))
    ed.render(ed.source_image(ed.DEFAULT_SOURCES, "twitter", concept), placement).save(args.out)


if __name__ == "__main__":
    main()
