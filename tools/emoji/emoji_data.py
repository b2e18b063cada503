"""The emoji world: concepts, their captions (English and Norwegian bokmål), the held-out
phrasings, and the renderings of both image styles on a background.

Sources (installed by tools/emoji/build_dataset.sh into .cache/emoji/node_modules, never
committed): emoji-datasource-google (Noto images, Apache-2.0), emoji-datasource-twitter
(Twemoji images, CC-BY-4.0), both with the MIT emoji.json index, and emojibase-data (MIT: labels
and tags per locale). Everything here is a pure function of those files and a seed, so the
dataset builder, the checker's trainer and the tests all see the same world.
"""
import hashlib
import json
import pathlib
import random
from dataclasses import dataclass, field

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SOURCES = ROOT / ".cache" / "emoji" / "node_modules"
STYLES = ("google", "twitter")
SIZE = 64
EXCLUDED_CATEGORIES = ("Flags", "Component")
# A tag shared by more concepts than this ("food", "face", "person") says too little to be a
# caption of its own; such tags are left out of the captions.
MAX_CONCEPTS_PER_TAG = 12
# Light backgrounds of the augmented renderings; the clean rendering is on white. The checker
# validates on HELD_OUT_BACKGROUNDS, which neither the dataset nor its training uses.
BACKGROUNDS = ((255, 255, 255), (242, 242, 242), (255, 248, 231), (232, 242, 255),
               (255, 236, 240), (236, 250, 236), (255, 252, 222), (240, 234, 255))
HELD_OUT_BACKGROUNDS = ((250, 240, 230), (224, 255, 255), (245, 245, 220), (230, 230, 250))
MIN_SCALE, MAX_SCALE = 0.6, 1.0

# Carrier phrases. Each concept is captioned with every template of its language; the held-out
# rules below remove some (template, concept) pairs and some words from training.
EN_LABEL_TEMPLATES = ("{label}", "{a} {label}", "a picture of {a} {label}",
                      "a drawing of {a} {label}", "an emoji of {a} {label}")
NB_LABEL_TEMPLATES = ("{label}", "et bilde av {label}", "en tegning av {label}",
                      "emoji av {label}")
# Held-out kinds and the share of concepts each applies to (chosen by a hash of the kind and the
# concept, so the choice is stable across runs, machines and package updates that add concepts).
HELD_OUT_SHARES = {
    # "a picture of a croissant" never in training for these concepts (other concepts keep
    # that carrier, and these keep the other carriers): a new combination of known parts.
    "en_template": 0.2,
    # "et bilde av croissant" likewise in Norwegian.
    "nb_template": 0.2,
    # The Norwegian label never in training (any carrier) where each of its words is one of the
    # concept's own Norwegian tags ("rødt eple" from "rødt", "eple"): composition of known words.
    "nb_label": 0.6,
    # A tag that names only this concept, never seen in training at all: a synonym.
    "en_synonym": 0.15,
}
HELD_OUT_TEMPLATE = {"en_template": "a picture of {a} {label}", "nb_template": "et bilde av {label}"}


@dataclass
class Concept:
    hexcode: str  # emojibase's hexcode without FE0F, e.g. "1F950"
    image: str  # file name in the packages' img/<style>/64/, e.g. "1f950.png"
    category: str
    en_label: str
    nb_label: str
    en_tags: list
    nb_tags: list
    captions: dict = field(default_factory=dict)  # caption -> (language, kind, split)


def strip_fe0f(hexcode):
    return "-".join(p for p in hexcode.upper().split("-") if p != "FE0F")


def stable_fraction(*parts):
    """A number in [0, 1) from a hash of the parts: deterministic, independent of order of
    iteration and of Python's hash seed."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def article(label):
    """English indefinite article for a label, "" for labels that read as plural or mass."""
    last = label.split()[-1]
    if last.endswith("s") and not last.endswith(("ss", "us", "is")):
        return ""
    return "an" if label[0].lower() in "aeiou" else "a"


def fill(template, label):
    a = article(label)
    text = template.format(a=a, label=label)
    return " ".join(text.split())  # an empty article leaves a double space


def load_concepts(sources=DEFAULT_SOURCES):
    """Every base emoji outside Flags and Component that both styles draw, in emoji.json's
    order. Skin-tone variants are never listed: emoji.json nests them under their base."""
    sources = pathlib.Path(sources)
    index = json.loads((sources / "emoji-datasource-google" / "emoji.json").read_text())
    locales = {}
    for lang in ("en", "nb"):
        rows = json.loads((sources / "emojibase-data" / lang / "data.json").read_text())
        locales[lang] = {strip_fe0f(r["hexcode"]): r for r in rows}
    concepts = []
    for entry in sorted(index, key=lambda e: e["sort_order"]):
        if entry["category"] in EXCLUDED_CATEGORIES:
            continue
        if not (entry.get("has_img_google") and entry.get("has_img_twitter")):
            continue
        key = strip_fe0f(entry["unified"])
        en, nb = locales["en"].get(key), locales["nb"].get(key)
        if en is None or nb is None:
            continue
        concepts.append(Concept(key, entry["image"], entry["category"], en["label"].lower(),
                                nb["label"].lower(), [t.lower() for t in en.get("tags", [])],
                                [t.lower() for t in nb.get("tags", [])]))
    assign_captions(concepts)
    return concepts


def _usage(concepts, lang):
    """How many concepts use each word or phrase as a label or tag, in one language."""
    counts = {}
    for c in concepts:
        label, tags = (c.en_label, c.en_tags) if lang == "en" else (c.nb_label, c.nb_tags)
        for phrase in {label, *tags}:
            counts[phrase] = counts.get(phrase, 0) + 1
    return counts


def _candidates(concept, usage_en, usage_nb):
    """All phrasings of a concept: {caption: (language, kind)}; first writer wins."""
    out = {}
    for template in EN_LABEL_TEMPLATES:
        kind = "en_template" if template == HELD_OUT_TEMPLATE["en_template"] else "en_label"
        out.setdefault(fill(template, concept.en_label), ("en", kind))
    for template in NB_LABEL_TEMPLATES:
        kind = "nb_template" if template == HELD_OUT_TEMPLATE["nb_template"] else "nb_label"
        out.setdefault(fill(template, concept.nb_label), ("nb", kind))
    for tag in concept.en_tags:
        if usage_en.get(tag, 0) <= MAX_CONCEPTS_PER_TAG:
            out.setdefault(tag, ("en", "en_synonym" if usage_en[tag] == 1 else "en_tag"))
    for tag in concept.nb_tags:
        if usage_nb.get(tag, 0) <= MAX_CONCEPTS_PER_TAG:
            out.setdefault(tag, ("nb", "nb_tag"))
    return out


def _held_out(concept, candidates):
    """The captions of this concept held out of training, by the rules of HELD_OUT_SHARES."""
    chosen = set()
    share = HELD_OUT_SHARES
    for kind in ("en_template", "nb_template"):
        if stable_fraction(kind, concept.hexcode) < share[kind]:
            label = concept.en_label if kind == "en_template" else concept.nb_label
            chosen.add(fill(HELD_OUT_TEMPLATE[kind], label))
    words = concept.nb_label.split()
    nb_fills = {fill(t, concept.nb_label) for t in NB_LABEL_TEMPLATES}
    norwegian_only = all(candidates[f][0] == "nb" for f in nb_fills)  # "yin yang" is English too
    if (len(words) > 1 and set(words) <= set(candidates) and norwegian_only
            and stable_fraction("nb_label", concept.hexcode) < share["nb_label"]):
        chosen.update(nb_fills)
    synonyms = sorted(c for c, (_, kind) in candidates.items() if kind == "en_synonym")
    if synonyms and stable_fraction("en_synonym", concept.hexcode) < share["en_synonym"]:
        pick = int(stable_fraction("en_synonym_pick", concept.hexcode) * len(synonyms))
        chosen.add(synonyms[pick])
    return chosen


def _held_out_kind(caption, concept, language, kind, held):
    nb_label_fills = {fill(t, concept.nb_label) for t in NB_LABEL_TEMPLATES}
    if language == "nb" and concept.nb_label in held and caption in nb_label_fills:
        return "nb_label"
    return kind


def assign_captions(concepts):
    """Fills each concept's captions with (language, kind, split). A held-out caption string is
    removed from the training captions of *every* concept, so no training caption equals an
    evaluation prompt."""
    usage_en, usage_nb = _usage(concepts, "en"), _usage(concepts, "nb")
    candidates = {c.hexcode: _candidates(c, usage_en, usage_nb) for c in concepts}
    held = {c.hexcode: _held_out(c, candidates[c.hexcode]) for c in concepts}
    # A held-out Norwegian label must stay learnable from its words: keep it in training when
    # one of them is itself held out (for any concept).
    all_held = set().union(*held.values())
    for c in concepts:
        if c.nb_label in held[c.hexcode] and set(c.nb_label.split()) & all_held:
            held[c.hexcode] -= {fill(t, c.nb_label) for t in NB_LABEL_TEMPLATES}
    all_held = set().union(*held.values())
    for c in concepts:
        for caption, (language, kind) in candidates[c.hexcode].items():
            if caption in held[c.hexcode]:
                c.captions[caption] = (language, _held_out_kind(caption, c, language, kind, held[c.hexcode]),
                                       "held_out")
            elif caption not in all_held:
                c.captions[caption] = (language, kind, "train")


def source_image(sources, style, concept):
    path = pathlib.Path(sources) / f"emoji-datasource-{style}" / "img" / style / "64" / concept.image
    with Image.open(path) as img:
        return img.convert("RGBA")  # some are palette PNGs


@dataclass(frozen=True)
class Placement:
    background: tuple
    scale: float
    dx: int  # offset of the emoji's top-left corner from the canvas's
    dy: int


CLEAN = Placement((255, 255, 255), 1.0, 0, 0)


def random_placement(rng, backgrounds=BACKGROUNDS, size=SIZE):
    scale = rng.uniform(MIN_SCALE, MAX_SCALE)
    free = size - round(size * scale)
    return Placement(rng.choice(backgrounds), scale, rng.randint(0, free), rng.randint(0, free))


def render(emoji_rgba, placement, size=SIZE):
    """The emoji scaled and placed on a flat background: an RGB image size x size."""
    canvas = Image.new("RGB", (size, size), placement.background)
    side = round(size * placement.scale)
    sprite = emoji_rgba if side == emoji_rgba.width else emoji_rgba.resize(
        (side, side), Image.LANCZOS)
    canvas.paste(sprite, (placement.dx, placement.dy), sprite)
    return canvas


def placements_for(concept, style, augmented, seed):
    """The dataset's renderings of one concept in one style: the clean one, then `augmented`
    random ones from a generator seeded by (seed, style, concept) only."""
    rng = random.Random(f"{seed}/{style}/{concept.hexcode}")
    return [CLEAN] + [random_placement(rng) for _ in range(augmented)]
