"""A CLIP-format byte-level BPE vocabulary learnt from our own captions.

The emoji model's tokenizer is ours, not OpenAI CLIP's: its merges are learnt here from the
training captions (English and Norwegian), so the text encoder's embedding table has a few
thousand rows instead of 49,408. The files have CLIP's format, so `transformers.CLIPTokenizer`,
diffusers' pipelines and imagegen's tokenizer (src/model/sd/text) read them unchanged:

  vocab.json   256 byte symbols, the same 256 ending a word ("</w>"), one token per merge, then
               <|startoftext|> and <|endoftext|>
  merges.txt   "#version: 0.2", then one "left right" pair per line, in merge order

Words are split as CLIPTokenizer splits them (lower case, its pre-tokeniser pattern), so every
string the tokenizer can meet falls back to byte symbols: nothing is ever unknown.
"""
import collections
import json
import pathlib

import regex

# CLIPTokenizer's pre-tokeniser: the special tokens, contractions, letter runs, single digits,
# other non-space runs.
WORD_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)
END = "</w>"
SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def byte_symbols():
    """Byte -> printable character, as GPT-2 and CLIP map them: bytes that print as themselves
    keep their character, the others take the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def words_of(text):
    table = byte_symbols()
    cleaned = " ".join(text.lower().split())
    for word in WORD_PATTERN.findall(cleaned):
        symbols = [table[b] for b in word.encode("utf-8")]
        symbols[-1] += END
        yield tuple(symbols)


def learn_merges(captions, vocab_size):
    """Most frequent adjacent pair first (ties: the pair that sorts first), until the vocabulary
    has vocab_size entries or no pair occurs twice. Pair counts are updated only in the words a
    merge touches."""
    counts = collections.Counter(w for c in captions for w in words_of(c))
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)
    merges = []
    budget = vocab_size - 512 - len(SPECIALS)
    while len(merges) < budget and pairs:
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for i in sorted(where.pop(best, ())):
            _merge_in_word(words, freq, i, best, pairs, where)
        pairs.pop(best, None)
    return merges


def _merge_in_word(words, freq, i, pair, pairs, where):
    old = words[i]
    for p in zip(old, old[1:]):
        pairs[p] -= freq[i]
        if pairs[p] <= 0:
            del pairs[p]
    new, k = [], 0
    while k < len(old):
        if k + 1 < len(old) and (old[k], old[k + 1]) == pair:
            new.append(old[k] + old[k + 1])
            k += 2
        else:
            new.append(old[k])
            k += 1
    words[i] = new
    for p in zip(new, new[1:]):
        pairs[p] += freq[i]
        where[p].add(i)


def write_tokenizer(captions, vocab_size, out_dir):
    """Writes vocab.json, merges.txt and the transformers tokenizer configs; returns the
    vocabulary size."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = learn_merges(captions, vocab_size)
    base = [byte_symbols()[b] for b in range(256)]
    tokens = base + [s + END for s in base] + ["".join(m) for m in merges] + list(SPECIALS)
    vocab = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", "utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", "utf-8")
    specials = {"bos_token": SPECIALS[0], "eos_token": SPECIALS[1], "unk_token": SPECIALS[1],
                "pad_token": SPECIALS[1]}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    config = dict(specials, tokenizer_class="CLIPTokenizer", model_max_length=77,
                  do_lower_case=True, clean_up_tokenization_spaces=True)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return len(vocab)
