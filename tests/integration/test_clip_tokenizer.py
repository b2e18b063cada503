"""The C++ CLIP tokenizer (imagegen-clip-tokenize, src/model/sd/text) against transformers.

No vocabulary can be downloaded here, so the test trains its own CLIP-format one: a byte-level
BPE (HF `tokenizers`) on a generated corpus of many scripts, written as CLIP writes it (the 256
byte characters, the same with "</w>", the merges, <|startoftext|> and <|endoftext|>), with the
configuration files of an SD 1.x folder (pad <|endoftext|>), an SD 2.x folder (pad "!") and an
older SD 2.x folder whose pad comes from special_tokens_map.json. transformers' slow
CLIPTokenizer, as installed without ftfy, is the reference: the ids without special tokens, the
77 ids diffusers feeds the text encoder, and A1111's chunks (a reference written below) must be
equal on every one of the generated strings. CLIPTokenizerFast is compared too and its
disagreements with the slow one are reported, not asserted (except on plain words).
"""
import collections
import json
import os
import pathlib
import random
import subprocess
import time
import unicodedata

import pytest

from conftest import binary_path

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402

TOOL = pathlib.Path(os.environ.get("IMAGEGEN_CLIP_TOKENIZE",
                                   pathlib.Path(binary_path()).parent / "imagegen-clip-tokenize"))
pytestmark = pytest.mark.skipif(
    not os.access(TOOL, os.X_OK),
    reason=f"{TOOL} is not built: the CLIP tokenizer belongs to the engine "
           "(configure with -DIMAGEGEN_ENGINE=ON, then ninja imagegen-clip-tokenize)")

CLIP_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                r"""[^\s\p{L}\p{N}]+""")
SOT, EOT = "<|startoftext|>", "<|endoftext|>"

# Code point ranges per script; random characters are drawn from them, skipping those this
# Python's unicodedata does not know (see draw_char).
SCRIPTS = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)],
    "greek": [(0x370, 0x3FF), (0x1F00, 0x1FFF)],
    "cyrillic": [(0x400, 0x52F)],
    "armenian": [(0x531, 0x58A)],
    "hebrew": [(0x591, 0x5F4)],
    "arabic": [(0x600, 0x6FF), (0x750, 0x77F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC)],
    "devanagari": [(0x900, 0x97F)],
    "thai": [(0xE01, 0xE5B)],
    "georgian": [(0x10A0, 0x10FF)],
    "hangul": [(0x1100, 0x11FF), (0xAC00, 0xD7A3), (0x3131, 0x318E)],
    "kana": [(0x3041, 0x30FF), (0xFF66, 0xFF9D)],
    "cjk": [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F), (0x3000, 0x303F)],
    "cherokee": [(0x13A0, 0x13F5), (0xAB70, 0xABBF)],
    "math": [(0x1D400, 0x1D7FF), (0x2100, 0x214F)],
    "symbols": [(0x2190, 0x23FF), (0x2500, 0x27BF), (0x2900, 0x2BFF), (0x1F300, 0x1FAFF)],
    "fullwidth": [(0xFF01, 0xFF5E)],
    "combining": [(0x300, 0x36F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                  (0xFE20, 0xFE2F)],
    "digits": [(0x30, 0x39), (0x660, 0x669), (0x6F0, 0x6F9), (0x966, 0x96F), (0xFF10, 0xFF19),
               (0x2070, 0x209C), (0x2150, 0x218B), (0x2460, 0x24FF), (0x1D7CE, 0x1D7FF)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E), (0xA1, 0xBF),
              (0x2010, 0x2027), (0x2030, 0x205E), (0x3001, 0x3003), (0xFF01, 0xFF0F)],
}
WHITESPACE = [" ", "\t", "\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
              "\xa0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005",
              "\u2006", "\u2007", "\u2008", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f",
              "\u205f", "\u3000", "\u180e", "\u200b", "\ufeff", "  ", " \n\t "]
# Controls, formats (bidi marks, joiners, BOM, tags), private use, U+FFFD, NUL, and code points
# unassigned in every Unicode version (noncharacters, U+0378).
STRANGE = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x80", "\x9f", "\ufffd", "\u200c", "\u200d",
           "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
           "\u2067", "\u2068", "\u2069", "\u061c", "\u00ad", "\u2060", "\ue000", "\uf8ff",
           "\U000f0000", "\U0010fffd", "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0010ffff",
           "\u0378", "\U000e0001", "\U000e0041", "\U000e007f", "\u0345", "\ufe0f", "\ufe0e"]
EMOJI = ["\U0001F600", "\U0001F44D", "\u2764\ufe0f", "\U0001F468\u200d\U0001F469\u200d"
         "\U0001F467\u200d\U0001F466", "\U0001F469\U0001F3FD\u200d\U0001F4BB",
         "\U0001F44B\U0001F3FB", "\U0001F44B\U0001F3FF", "\U0001F1EF\U0001F1F5",
         "\U0001F1FA\U0001F1F8", "1\ufe0f\u20e3", "#\ufe0f\u20e3",
         "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F",
         "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F9D1\u200d\U0001F91d\u200d\U0001F9D1",
         "\u263a", "\u263a\ufe0f", "\U0001FAE0", "\U0001F636\u200d\U0001F32B\ufe0f"]
CASE_TRICKS = ["\u039f\u0394\u039f\u03a3", "\u03a3", "\u0391\u03a3'\u03a3", "\u03a3\u0391",
               "\u039f\u03a3.", "\u0130stanbul", "STRA\u1e9eE", "stra\u00dfe", "\u01c5ungla",
               "\ufb01ne", "\u212a", "\u2126", "\ufb13", "\u13a0\u13a1", "\u0149", "\u1f88",
               "\u0390", "I\u0307", "\u00c5ngstr\u00f6m", "\u212b", "\u1e9b\u0323", "\u0587"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'vE",
                "'M", "'LL", "'Ll", "'lL", "'D", "'\u017f", "'\u017fs", "''s", "'''", "'", "'x",
                "\u2019s", "`s"]
SPECIALS = [SOT, EOT, "<|STARTOFTEXT|>", "<|EndOfText|>", "<|\u017ftartoftext|>",
            "<|end\u200boftext|>", "<|endoftext", "|endoftext|>", "<|<|endoftext|>|>",
            "!<|endoftext|>", "<|endoftext|>!", EOT + SOT, "<| endoftext |>", "!", "!!", "! !",
            "<\uff5cendoftext\uff5c>", "<|endof\u0000text|>", "<|endoftext|>'s"]
ENGLISH = ("a photo of an astronaut riding a horse on the moon highly detailed digital painting "
           "artstation concept art smooth sharp focus illustration by greg rutkowski 8k unreal "
           "engine trending cinematic lighting portrait of a beautiful woman with red hair in a "
           "forest at sunset oil on canvas masterpiece best quality ultra realistic the cat's "
           "hat isn't they're we've i'm you'll he'd").split()


ADDED = [("<cat>", True, True), ("<cat><dog>", False, False), ("dog>", True, False),
         ("at><", False, True)]


def draw_char(rng, ranges):
    """A random character of `ranges` that this Python's Unicode data assigns (transformers
    removes unassigned ones as controls; ICU's newer Unicode may know them: not compared)."""
    while True:
        lo, hi = rng.choice(ranges)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) not in ("Cn", "Cs"):
            return c


def script_word(rng, script, length=None):
    return "".join(draw_char(rng, SCRIPTS[script]) for _ in range(length or rng.randint(1, 9)))


def recase(rng, text):
    mode = rng.randrange(4)
    if mode == 0:
        return text.upper()
    if mode == 1:
        return text.title()
    if mode == 2:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in text)
    return text


def corpus(rng, count):
    """Training text: English-like words plus words of every script, so that merges exist for
    multi-byte characters too."""
    lines = []
    for _ in range(count):
        words = [rng.choice(ENGLISH) for _ in range(rng.randint(3, 12))]
        words += [script_word(rng, rng.choice(list(SCRIPTS))) for _ in range(rng.randint(0, 4))]
        rng.shuffle(words)
        lines.append(" ".join(words))
    return lines


def fragment(rng, category):
    pick = rng.choice
    if category == "words":
        return " ".join(recase(rng, pick(ENGLISH)) + pick(["", "", ",", ".", "!", "'s", "?!"])
                        for _ in range(rng.randint(1, 12)))
    if category == "scripts":
        return pick([" ", "", "-"]).join(script_word(rng, pick(list(SCRIPTS)))
                                         for _ in range(rng.randint(1, 6)))
    if category == "emoji":
        return "".join(pick(EMOJI) + pick(["", " ", "", "\u200d", "a"])
                       for _ in range(rng.randint(1, 6)))
    if category == "combining":
        return "".join(pick(["a", "e", "o", "q", "\u0391", "\u0418", "\u1100", "\u1161", "\u11a8",
                             "i", "\u3042", "\u0915"])
                       + "".join(draw_char(rng, SCRIPTS["combining"])
                                 for _ in range(rng.randint(0, 3)))
                       for _ in range(rng.randint(1, 8)))
    if category == "rtl":
        return pick(["", "\u200f", "\u202b", "\u2067"]).join(
            script_word(rng, pick(["hebrew", "arabic", "digits"])) for _ in range(rng.randint(1, 5)))
    if category == "cjk":
        return "".join(script_word(rng, pick(["cjk", "kana", "hangul", "fullwidth"]))
                       + pick(["", "", " ", "\u3000", "\u3001", "abc", "12"])
                       for _ in range(rng.randint(1, 5)))
    if category == "controls":
        return "".join(pick(STRANGE) + pick(["", "a", "Ab", " ", "1"])
                       for _ in range(rng.randint(1, 8)))
    if category == "whitespace":
        return "".join(pick(WHITESPACE) + pick(ENGLISH) for _ in range(rng.randint(1, 8))) \
            + pick(WHITESPACE)
    if category == "punct":
        return "".join(draw_char(rng, SCRIPTS["punct"]) if rng.random() < 0.7 else pick(ENGLISH)
                       for _ in range(rng.randint(1, 15)))
    if category == "contractions":
        return " ".join(recase(rng, pick(ENGLISH)) + pick(CONTRACTIONS) + pick(["", "s", "x", "!"])
                        for _ in range(rng.randint(1, 6)))
    if category == "digits":
        return "".join(draw_char(rng, SCRIPTS["digits"]) for _ in range(rng.randint(1, 10))) \
            + pick(["", " px", "th", "%", ".5"])
    if category == "special":
        return "".join(pick(SPECIALS) + pick(["", "", " ", "a", "A ", "!"])
                       for _ in range(rng.randint(1, 4)))
    if category == "case":
        return " ".join(pick(CASE_TRICKS) + pick(["", "", "!", "\u0301", "'s"])
                        for _ in range(rng.randint(1, 4)))
    raise ValueError(category)


CATEGORIES = ["words", "scripts", "emoji", "combining", "rtl", "cjk", "controls", "whitespace",
              "punct", "contractions", "digits", "special", "case"]


def generated_strings(rng, count):
    """(category, text) pairs: each category alone, mixtures of them, and long prompts."""
    cases = [("empty", ""), ("empty", " "), ("empty", "\u200b\x00"), ("empty", "\u3000\t")]
    per_category = count * 6 // 10 // len(CATEGORIES)
    for category in CATEGORIES:
        cases += [(category, fragment(rng, category)) for _ in range(per_category)]
    while len(cases) < count * 95 // 100:
        parts = [fragment(rng, rng.choice(CATEGORIES)) for _ in range(rng.randint(2, 5))]
        cases.append(("mixed", rng.choice(["", " ", ""]).join(parts)))
    while len(cases) < count:
        words = []
        for _ in range(rng.randint(60, 400)):
            words.append(rng.choice(ENGLISH) if rng.random() < 0.9
                         else fragment(rng, rng.choice(CATEGORIES)))
            if rng.random() < 0.12:
                words.append(",")
        cases.append(("long", " ".join(words)))
    return cases


def train_vocabulary(folder, rng):
    """vocab.json and merges.txt in CLIP's layout from a BPE trained on the generated corpus."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=6000, min_frequency=2, end_of_word_suffix="</w>",
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(corpus(rng, 6000), trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    seen = set(tokens)
    usable = []
    for left, right in merges:
        if left in seen and right in seen:  # CLIP's merges only join tokens it has
            usable.append((left, right))
            if left + right not in seen:
                seen.add(left + right)
                tokens.append(left + right)
    tokens += [SOT, EOT]
    (folder / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in usable), encoding="utf-8")
    return len(tokens), len(usable)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tokenizer folders: {"sd1": path, "sd2": path, "sd2_legacy": path} and vocabulary sizes."""
    root = tmp_path_factory.mktemp("clip")
    base = root / "trained"
    base.mkdir()
    vocab_size, merge_count = train_vocabulary(base, random.Random(1234))
    out = {}
    for name, pad in (("sd1", EOT), ("sd2", "!")):
        tokenizer = transformers.CLIPTokenizer(str(base / "vocab.json"), str(base / "merges.txt"),
                                               pad_token=pad, model_max_length=77)
        tokenizer.save_pretrained(str(root / name))
        out[name] = root / name
    legacy = root / "sd2_legacy"
    legacy.mkdir()
    for f in ("vocab.json", "merges.txt"):
        (legacy / f).write_bytes((base / f).read_bytes())
    added = {"__type": "AddedToken", "lstrip": False, "rstrip": False, "normalized": True,
             "single_word": False}
    (legacy / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "do_lower_case": True, "errors": "replace",
        "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "pad_token": EOT,
        "bos_token": dict(added, content=SOT), "eos_token": dict(added, content=EOT),
        "unk_token": dict(added, content=EOT)}))
    (legacy / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": SOT, "eos_token": EOT, "unk_token": EOT, "pad_token": "!"}))
    out["sd2_legacy"] = legacy
    # Added tokens beyond the vocabulary, overlapping each other, with lstrip/rstrip.
    tokenizer = transformers.CLIPTokenizer(str(base / "vocab.json"), str(base / "merges.txt"),
                                           model_max_length=77)
    tokenizer.add_tokens([transformers.AddedToken(t, lstrip=lstrip, rstrip=rstrip)
                          for t, lstrip, rstrip in ADDED])
    tokenizer.save_pretrained(str(root / "added"))
    out["added"] = root / "added"
    # The same merges in a random order: a merge's result can then meet a better-ranked pair at
    # once, which transformers leaves for its next round (BytePairEncoder defers it too).
    shuffled = root / "shuffled"
    shuffled.mkdir()
    for f in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
        (shuffled / f).write_bytes((root / "sd1" / f).read_bytes())
    header, *merges = (base / "merges.txt").read_text(encoding="utf-8").splitlines()
    random.Random(4321).shuffle(merges)
    (shuffled / "merges.txt").write_text("\n".join([header, *merges]) + "\n", encoding="utf-8")
    out["shuffled"] = shuffled
    return out, vocab_size, merge_count


def run_tool(folder, texts, timeout=600, extra=()):
    lines = "".join(json.dumps(t) + "\n" for t in texts)
    started = time.monotonic()
    out = subprocess.run([str(TOOL), "--tokenizer", str(folder), *extra], input=lines,
                         capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(answers) == len(texts)
    return answers, elapsed


def a1111_chunks(ids, bos, eos, pad, comma, backtrack=20, size=75):
    """A1111's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line without emphasis, embeddings
    or BREAK, and process_tokens' SD 2.x padding: our reference for EncodeChunks."""
    chunks, current, last_comma = [], [], -1

    def close():
        nonlocal current, last_comma
        chunks.append([bos] + current + [eos] * (size - len(current)) + [eos])
        current, last_comma = [], -1

    for token in ids:
        if token == comma:
            last_comma = len(current)
        elif (backtrack and len(current) == size and last_comma != -1
              and len(current) - last_comma <= backtrack):
            moved = current[last_comma + 1:]
            current = current[:last_comma + 1]
            close()
            current = moved
        if len(current) == size:
            close()
        current.append(token)
    if current or not chunks:
        close()
    if pad != eos:
        for row in chunks:
            first = row.index(eos)
            row[first + 1:] = [pad] * (len(row) - first - 1)
    return chunks


def reference(slow, text):
    ids = slow(text, add_special_tokens=False).input_ids
    encoded = slow(text, padding="max_length", max_length=slow.model_max_length,
                   truncation=True).input_ids
    comma = slow.get_vocab().get(",</w>", -1)
    chunks = a1111_chunks(ids, slow.bos_token_id, slow.eos_token_id, slow.pad_token_id, comma)
    return {"ids": ids, "input_ids": encoded, "chunks": chunks}


def compare(folder, cases, expected_pad):
    slow = transformers.CLIPTokenizer.from_pretrained(str(folder))
    assert slow.fix_text is None, "ftfy is installed: the reference is transformers without it"
    assert slow.pad_token_id == slow.convert_tokens_to_ids(expected_pad)
    answers, elapsed = run_tool(folder, [text for _, text in cases])
    mismatches = collections.defaultdict(list)
    for (category, text), answer in zip(cases, answers):
        want = reference(slow, text)
        if answer != want:
            mismatches[category].append((text, answer, want))
        elif len(want["ids"]) <= 75 and slow.eos_token_id not in want["ids"]:
            # A short prompt's one chunk is exactly what diffusers encodes.
            assert want["chunks"] == [want["input_ids"]]
    return slow, mismatches, elapsed


def describe(mismatches):
    lines = []
    for category, items in mismatches.items():
        lines.append(f"{category}: {len(items)} mismatches")
        for text, got, want in items[:3]:
            key = next(k for k in want if got.get(k) != want[k]) if "error" not in got else "error"
            lines.append(f"  {text!r}: {key}: C++ {got.get(key, got)} vs transformers {want[key]}")
    return "\n".join(lines)


def test_ids_equal_transformers_on_twelve_thousand_strings(folders):
    paths, vocab_size, merge_count = folders
    assert vocab_size > 2000 and merge_count > 1500, (vocab_size, merge_count)
    cases = generated_strings(random.Random(20261201), 12000)
    slow, mismatches, elapsed = compare(paths["sd1"], cases, EOT)
    assert not mismatches, describe(mismatches)
    long_cases = [text for category, text in cases if category == "long"]
    assert sum(len(slow(t, add_special_tokens=False).input_ids) > 150 for t in long_cases) > 100
    print(f"\n{len(cases)} strings, vocabulary {vocab_size}, {merge_count} merges: C++ tool "
          f"{elapsed:.2f} s for all (ids, 77-token encoding and chunks)")


def test_merges_out_of_training_order(folders):
    paths, _, _ = folders
    cases = generated_strings(random.Random(13), 3000)
    _, mismatches, _ = compare(paths["shuffled"], cases, EOT)
    assert not mismatches, describe(mismatches)


@pytest.mark.parametrize("variant", ["sd2", "sd2_legacy"])
def test_open_clip_padding_with_exclamation_mark(folders, variant):
    paths, _, _ = folders
    cases = generated_strings(random.Random(7), 3000)
    cases += [("special", "a red car!"), ("special", "wow!!! ok"), ("special", "!" * 80)]
    slow, mismatches, _ = compare(paths[variant], cases, "!")
    assert not mismatches, describe(mismatches)
    assert slow.pad_token_id == 0 and slow.eos_token_id != 0


def test_added_tokens_are_cut_out_longest_first_with_their_strip_flags(folders):
    paths, _, _ = folders
    rng = random.Random(11)
    parts = [t for t, _, _ in ADDED] + ["<dog>", " ", "  ", "\u3000", "\n", "a", "cat", "<",
                                        "<ca", EOT, "CAT"]
    cases = [("added", "".join(rng.choice(parts) for _ in range(rng.randint(1, 10))))
             for _ in range(3000)]
    slow, mismatches, _ = compare(paths["added"], cases, EOT)
    assert not mismatches, describe(mismatches)
    assert len(slow) == len(slow.get_vocab()) and slow.convert_tokens_to_ids("<cat>") >= 2000


def test_fast_tokenizer_disagreements_are_reported(folders):
    """CLIPTokenizerFast normalises differently (no control removal, no CJK spacing); where it
    differs from the slow one, the slow one is the reference. Plain words must agree."""
    paths, _, _ = folders
    slow = transformers.CLIPTokenizer.from_pretrained(str(paths["sd1"]))
    fast = transformers.CLIPTokenizerFast.from_pretrained(str(paths["sd1"]))
    cases = generated_strings(random.Random(99), 6000)
    differ = collections.Counter()
    totals = collections.Counter()
    examples = {}
    for category, text in cases:
        totals[category] += 1
        s = slow(text, add_special_tokens=False).input_ids
        f = fast(text, add_special_tokens=False).input_ids
        if s != f:
            differ[category] += 1
            examples.setdefault(category, repr(text)[:60])
    report = "\n".join(f"  {c}: {differ[c]}/{totals[c]} differ, e.g. {examples.get(c)}"
                       for c in sorted(totals) if differ[c])
    print("\nCLIPTokenizerFast vs CLIPTokenizer (slow is the reference):\n" + report)
    assert differ["words"] == 0, report


def test_a_megabyte_prompt_is_tokenized_in_bounded_time(folders):
    paths, _, _ = folders
    rng = random.Random(5)
    words = " ".join(rng.choice(ENGLISH) + rng.choice(["", ",", "!"]) for _ in range(180000))
    words = words[:1 << 20]
    one_word = "".join(rng.choice("abcdefghij\u00e9\u4e2d") for _ in range(1 << 20))
    answers, elapsed = run_tool(paths["sd1"], [words, one_word], timeout=120)
    slow = transformers.CLIPTokenizer.from_pretrained(str(paths["sd1"]))
    assert answers[0]["ids"] == slow(words, add_special_tokens=False).input_ids
    assert len(answers[0]["chunks"]) > 1000
    assert len(answers[1]["ids"]) > 1000 and len(answers[1]["input_ids"]) == 77
    print(f"\ntwo 1 MiB prompts (words; one word without spaces): {elapsed:.2f} s")
    assert elapsed < 60


def test_tool_refuses_corrupt_and_missing_files(folders, tmp_path):
    paths, _, _ = folders
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "vocab.json").write_text('{"a": 1,')
    (broken / "merges.txt").write_bytes((paths["sd1"] / "merges.txt").read_bytes())
    out = subprocess.run([str(TOOL), "--tokenizer", str(broken)], input="", capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "vocab.json" in out.stderr, out
    (broken / "vocab.json").write_bytes((paths["sd1"] / "vocab.json").read_bytes())
    (broken / "merges.txt").unlink()
    out = subprocess.run([str(TOOL), "--tokenizer", str(broken)], input="", capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 3 and "merges.txt" in out.stderr, out
    out = subprocess.run([str(TOOL), "--tokenizer", str(paths["sd1"])], input='{"no": 1}\n"ok"\n',
                         capture_output=True, text=True, timeout=30)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["error"]["code"] == "invalid_request"
    assert len(lines[1]["input_ids"]) == 77
