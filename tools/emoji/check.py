#!/usr/bin/env python3
"""Which emoji concept does each image show? Prints JSON: one object per image with the top
concepts (hexcode, English and Norwegian label, probability), best first.

  tools/emoji/check.py IMAGE... [--model-dir models/checker] [--top 5]

Runs on the reference Python (torch): .venv-ref/bin/python tools/emoji/check.py out.png
Exit status 2 when an image cannot be read (its entry carries "error" instead of "top").
"""
import argparse
import json
import pathlib
import sys

import torch
from PIL import Image, UnidentifiedImageError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import checker_net as cn  # noqa: E402


def check_images(model, config, paths, top):
    """[{"image", "top": [...]}] in the order of paths; unreadable files get "error"."""
    results, readable, images = [], [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                images.append(img.copy())
            readable.append(len(results))
            results.append({"image": str(path)})
        except (OSError, UnidentifiedImageError) as e:
            results.append({"image": str(path), "error": f"unreadable image: {e}"})
    if images:
        idx, probs = cn.top_k(model, cn.to_input(images), top)
        concepts = config["concepts"]
        for slot, row_i, row_p in zip(readable, idx.tolist(), probs.tolist()):
            results[slot]["top"] = [{**concepts[i], "score": round(p, 4)}
                                    for i, p in zip(row_i, row_p)]
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", type=pathlib.Path)
    ap.add_argument("--model-dir", type=pathlib.Path, default=cn.DEFAULT_DIR)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, config = cn.load(args.model_dir)
    results = check_images(model, config, args.images, args.top)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    return 2 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
