"""The emoji dataset builder (tools/emoji/build_dataset.py), the concept checker
(tools/emoji/check.py, models/checker/) and the evaluation harness (tools/emoji/evaluate.py),
each through its command line, on a subset of the concepts so the suite stays fast.

Needs the npm sources in .cache/emoji (tools/emoji/build_dataset.sh, run by scripts/setup.sh
test) and, for the checker, the reference Python with torch (IMAGEGEN_REFERENCE_PYTHON, default
.venv-ref/bin/python; those tests skip when it does not exist).
"""
import hashlib
import json
import os
import pathlib
import random
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "emoji"
SOURCES = ROOT / ".cache" / "emoji" / "node_modules"
CHECKER = ROOT / "models" / "checker"
CARD = ROOT / "models" / "emoji" / "CARD.md"
SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
# The subset rendered here: the first LIMIT concepts (faces) plus these (croissant, red apple,
# a dog face, a pizza, a bus), so food, animals and vehicles are among the checked images.
LIMIT = 24
INCLUDE = "1F950,1F34E,1F436,1F355,1F68C"
sys.path.insert(0, str(TOOLS))
import emoji_data as ed  # noqa: E402


def reference_python():
    path = pathlib.Path(os.environ.get("IMAGEGEN_REFERENCE_PYTHON",
                                       ROOT / ".venv-ref" / "bin" / "python"))
    if not path.exists():
        pytest.skip(f"no reference Python with torch at {path} (IMAGEGEN_REFERENCE_PYTHON)")
    return str(path)


def build(out, *extra):
    assert (SOURCES / "emojibase-data").is_dir(), \
        f"{SOURCES} missing: run tools/emoji/build_dataset.sh (scripts/setup.sh test)"
    proc = subprocess.run([sys.executable, str(TOOLS / "build_dataset.py"), "--out", str(out),
                           "--limit", str(LIMIT), "--include", INCLUDE, *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def manifest(directory):
    return [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]


def digest_tree(directory):
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build(tmp_path_factory.mktemp("emoji") / "dataset")


@pytest.fixture(scope="module")
def concepts(dataset):
    return json.loads((dataset / "concepts.json").read_text())


def test_build_is_deterministic(dataset, tmp_path):
    again = build(tmp_path / "again")
    assert digest_tree(again) == digest_tree(dataset)
    other_seed = build(tmp_path / "seed2", "--seed", "2")
    assert digest_tree(other_seed) != digest_tree(dataset)  # the augmentations follow the seed


def test_manifest_rows_name_existing_images_of_both_styles(dataset):
    rows = manifest(dataset)
    assert {r["style"] for r in rows} == {"google", "twitter"}
    assert {r["split"] for r in rows} == {"train", "held_out"}
    for image in {r["image"] for r in rows}:
        assert (dataset / image).is_file(), image
    croissant = {r["image"] for r in rows if r["concept"] == "1F950"}
    # clean + 2 augmented renderings per style
    assert croissant == {f"images/{s}/1F950_{k}.png" for s in ("google", "twitter")
                         for k in range(3)}
    from PIL import Image
    with Image.open(dataset / "images/twitter/1F950_0.png") as img:
        assert img.size == (64, 64) and img.mode == "RGB"
        assert img.getpixel((0, 0)) == (255, 255, 255)  # clean: on white


def test_only_base_emoji_outside_flags_and_components(concepts):
    index = json.loads((SOURCES / "emoji-datasource-google" / "emoji.json").read_text())
    category = {ed.strip_fe0f(e["unified"]): e["category"] for e in index}
    expected = {ed.strip_fe0f(e["unified"]) for e in index
                if e["category"] not in ("Flags", "Component")}
    codes = {c["hexcode"] for c in concepts}
    assert codes == expected and len(codes) == len(concepts)
    assert not {category[c] for c in codes} & {"Flags", "Component"}
    assert not any(SKIN_TONES & set(c.split("-")) for c in codes)
    # the skin-tone variants exist in the packages, so leaving them out is a choice made here
    variants = {ed.strip_fe0f(v) for e in index for v in e.get("skin_variations", {})}
    assert variants and not variants & codes


def test_held_out_phrasings_never_train(concepts, dataset):
    train = {t["caption"] for c in concepts for t in c["train"]}
    held = {h["caption"] for c in concepts for h in c["held_out"]}
    assert held and not held & train
    kinds = {h["kind"] for c in concepts for h in c["held_out"]}
    assert kinds == {"en_template", "nb_template", "nb_label", "en_synonym"}
    rows = manifest(dataset)
    assert not {r["caption"] for r in rows if r["split"] == "train"} & held
    # a held-out Norwegian label is learnable only from its words: each is a training tag
    for c in concepts:
        if any(h["kind"] == "nb_label" for h in c["held_out"]):
            assert c["nb_label"] not in train
            assert set(c["nb_label"].split()) <= {t["caption"] for t in c["train"]}


def test_captions_in_english_and_norwegian(concepts):
    by_code = {c["hexcode"]: c for c in concepts}
    croissant = {t["caption"] for t in by_code["1F950"]["train"] + by_code["1F950"]["held_out"]}
    assert {"croissant", "a croissant", "bread", "brød", "en tegning av croissant"} <= croissant
    apple = by_code["1F34E"]
    apple = {t["caption"]: t["language"] for t in apple["train"] + apple["held_out"]}
    assert apple["rødt eple"] == "nb" and apple["a red apple"] == "en"
    languages = [t["language"] for c in concepts for t in c["train"]]
    assert languages.count("nb") > 5000 and languages.count("en") > 10000


def test_licences_in_dataset_and_card(dataset):
    text = (dataset / "LICENSES.md").read_text()
    for needle in ("Apache License 2.0", "CC-BY 4.0", "MIT", "Twemoji", "Noto"):
        assert needle in text
    assert "Apache License" in (dataset / "licenses" / "Apache-2.0.txt").read_text()
    assert "Cal Henderson" in (dataset / "licenses" / "emoji-datasource-MIT.txt").read_text()
    assert "Miles Johnson" in (dataset / "licenses" / "emojibase-MIT.txt").read_text()
    card = CARD.read_text()
    for needle in ("Apache-2.0", "CC-BY-4.0", "MIT", "Twemoji", "Noto", "emojibase"):
        assert needle in card


def test_shapes_world_joins_the_manifest(tmp_path):
    binary = pathlib.Path(os.environ.get("IMAGEGEN_DATASET_BIN",
                                         ROOT / "build" / "imagegen-dataset"))
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not built (IMAGEGEN_DATASET_BIN; needs -DIMAGEGEN_ENGINE=ON)")
    out = build(tmp_path / "ds", "--shapes-bin", str(binary), "--shapes-count", "40",
                "--shapes-held-out", "10")
    shapes = [r for r in manifest(out) if r["concept"] == "shapes"]
    assert [r["split"] for r in shapes].count("train") == 40
    assert [r["split"] for r in shapes].count("held_out") == 10
    from PIL import Image
    with Image.open(out / shapes[0]["image"]) as img:
        assert img.size == (64, 64)
    assert all(r["scene"]["shape"] in r["caption"] for r in shapes)
    held_pairs = {("green", "triangle"), ("orange", "square"), ("purple", "circle"),
                  ("yellow", "triangle"), ("white", "square")}  # synth.cc's HeldOutPairs()
    for r in shapes:
        pair = (r["scene"]["colour"], r["scene"]["shape"])
        assert (pair in held_pairs) == (r["split"] == "held_out"), r


def run_check(*paths):
    proc = subprocess.run([reference_python(), str(TOOLS / "check.py"), *map(str, paths)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def test_checker_reads_its_own_training_images(dataset):
    images = sorted((dataset / "images").rglob("*.png"))
    code, out, err = run_check(*images)
    assert code == 0, err
    results = json.loads(out)
    assert len(results) == len(images)
    hits = sum(r["top"][0]["hexcode"] == pathlib.Path(r["image"]).name.split("_")[0]
               for r in results)
    assert hits / len(images) >= 0.95, f"{hits}/{len(images)}"
    top = results[0]["top"]
    assert len(top) == 5 and all(set(t) >= {"hexcode", "en_label", "nb_label", "score"}
                                 for t in top)
    assert top == sorted(top, key=lambda t: -t["score"])


def test_checker_on_held_out_backgrounds_and_placements(tmp_path):
    """Renderings the checker never trained on: other background colours, other offsets."""
    rng = random.Random("test-held-out")
    picked = [c for c in ed.load_concepts() if c.hexcode in INCLUDE.split(",")]
    picked += rng.sample(ed.load_concepts(), 40)
    paths = []
    for i, c in enumerate(picked):
        for style in ed.STYLES:
            path = tmp_path / f"{c.hexcode}_{style}_{i}.png"
            placement = ed.random_placement(rng, ed.HELD_OUT_BACKGROUNDS)
            ed.render(ed.source_image(SOURCES, style, c), placement).save(path)
            paths.append(path)
    code, out, err = run_check(*paths)
    assert code == 0, err
    results = json.loads(out)
    top5 = sum(pathlib.Path(r["image"]).name.split("_")[0] in [t["hexcode"] for t in r["top"]]
               for r in results)
    assert top5 / len(results) >= 0.95, f"{top5}/{len(results)}"


def test_checker_reports_an_unreadable_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    good = tmp_path / "good.png"
    concept = next(c for c in ed.load_concepts() if c.hexcode == "1F950")
    ed.render(ed.source_image(SOURCES, "google", concept), ed.CLEAN).save(good)
    code, out, _ = run_check(bad, good)
    assert code == 2
    results = json.loads(out)
    assert "unreadable image" in results[0]["error"]
    assert results[1]["top"][0]["hexcode"] == "1F950"


def test_checker_weights_small_and_cross_style_reported():
    assert (CHECKER / "checker.safetensors").stat().st_size < 5 * 2**20
    cross = json.loads((CHECKER / "cross_style.json").read_text())
    card = CARD.read_text()
    for run in ("google->twitter", "twitter->google"):
        result = cross[run]
        assert 0 <= result["top1"] <= result["top5"] <= 1
        # the card quotes the measured numbers, as percentages with one decimal
        assert f"{100 * result['top1']:.1f}%" in card, run


def evaluate(dataset, command, *extra):
    proc = subprocess.run([reference_python(), str(TOOLS / "evaluate.py"), "--generate-cmd",
                           command, "--concepts-json", str(dataset / "concepts.json"),
                           "--concepts", "4", "--seeds", "1,2", *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_harness_scores_a_model_that_draws_the_prompt(dataset, tmp_path):
    oracle = f"{sys.executable} {ROOT}/tests/integration/emoji_oracle.py {dataset}/concepts.json"
    details = tmp_path / "details.jsonl"
    _, report = evaluate(dataset, oracle + ' "{prompt}" {seed} {out}', "--details",
                         str(details), "--save", str(tmp_path / "images"))
    acc = report["accuracy"]
    assert report["errors"] == 0 and report["seeds"] == [1, 2]
    assert {"train/en", "train/nb", "held_out/en", "held_out/nb"} <= set(acc)
    rows = [json.loads(line) for line in details.read_text().splitlines()]
    # every verdict is the checker's own reading of the saved image
    code, out, err = run_check(*[r["image"] for r in rows])
    assert code == 0, err
    for row, checked in zip(rows, json.loads(out)):
        assert row["top"] == [t["hexcode"] for t in checked["top"]]
        assert row["top1"] == int(row["top"][0] == row["concept"])
        assert row["top5"] == int(row["concept"] in row["top"])
    for split in ("train", "held_out"):
        mine = [r["top5"] for r in rows if r["split"] == split]
        assert acc[split]["top5"] == round(sum(mine) / len(mine), 4)
    # far above chance (5 of 1,636): the harness hands the checker the right images
    assert acc["train"]["top5"] >= 0.75 and acc["held_out"]["top5"] >= 0.75


def test_harness_scores_a_model_that_ignores_the_prompt(dataset):
    oracle = f"{sys.executable} {ROOT}/tests/integration/emoji_oracle.py {dataset}/concepts.json"
    details = dataset.parent / "always.jsonl"
    _, report = evaluate(dataset, oracle + ' "{prompt}" {seed} {out} --always 1F950',
                         "--details", str(details))
    rows = [json.loads(line) for line in details.read_text().splitlines()]
    # only the croissant's own prompts can be right; every image is read as a croissant
    assert all(r["top"][0] == "1F950" for r in rows)
    croissant = sum(r["concept"] == "1F950" for r in rows)
    assert 0 < croissant < len(rows)
    assert sum(r["top1"] for r in rows) == croissant
    assert report["images"] == len(rows)


def test_harness_counts_a_failing_model_as_misses(dataset):
    code, report = evaluate(dataset, f"{sys.executable} -c 'raise SystemExit(3)' {{prompt}}")
    assert code == 1 and report["errors"] == report["images"] > 0
    assert report["accuracy"]["train"]["top1"] == 0
    assert re.match(r"exit 3", report["first_errors"][0]["error"])
