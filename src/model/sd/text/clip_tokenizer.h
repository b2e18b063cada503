// CLIP's tokenizer for Stable Diffusion text encoders, giving the ids that transformers'
// CLIPTokenizer (the Python one, as installed without ftfy) gives, from the files of a
// diffusers model folder's tokenizer/ directory.
//
// What it reproduces, in order:
//  1. added tokens: the special tokens (bos, eos, unk, pad, additional) and the entries of
//     tokenizer_config.json's added_tokens_decoder are cut out of the text first, leftmost and
//     longest first, case-sensitively, honouring their lstrip/rstrip flags;
//  2. each remaining piece is cleaned as transformers' BasicTokenizer does: NUL, U+FFFD and
//     control/format/unassigned/private-use characters removed, whitespace made a space, CJK
//     ideographs spaced, NFC, split on whitespace, lower-cased;
//  3. CLIP's pre-tokeniser pattern (<|startoftext|>, <|endoftext|>, the contractions 's 't 're
//     've 'm 'll 'd, letter runs, single digits, runs of other symbols; case-insensitive);
//  4. byte-level BPE with the "</w>" end-of-word marker; unknown pieces become the unk id.
// Unicode properties come from ICU; where ICU's Unicode version differs from that of the Python
// that runs transformers, characters assigned in between may tokenise differently.
//
// Where it refuses what transformers tolerates: a merges.txt line that is not two symbols, a
// special token with no id in vocab.json or added_tokens_decoder (transformers would invent one
// past the embedding table), single_word added tokens, and prompts that are not UTF-8. Not read:
// tokenizer.json (a fast tokenizer's file; diffusers folders carry the slow files).
//
// Thread-safe: a loaded tokenizer is immutable apart from a bounded, locked word cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

// The contents of a tokenizer folder's files. An empty string stands for a missing optional
// file; vocab_json and merges_txt are required.
struct ClipTokenizerFiles {
  std::string vocab_json;               // vocab.json: {"token": id, ...}
  std::string merges_txt;               // merges.txt: "#version" line, then "left right" lines
  std::string tokenizer_config_json;    // tokenizer_config.json
  std::string special_tokens_map_json;  // special_tokens_map.json
  std::string added_tokens_json;        // added_tokens.json (legacy)
};

struct ChunkOptions {
  // A1111's comma_padding_backtrack: when a chunk is full and a comma was among its last this
  // many tokens, the tokens after the comma move to the next chunk. 0 disables it.
  int comma_backtrack = 20;
};

class ClipTokenizer {
 public:
  // Tokens of prompt text per chunk; a chunk adds BOS and EOS around them.
  static constexpr int kChunkTokens = 75;

  // Reads vocab.json, merges.txt and the optional configuration files of `dir`.
  // kNotFound when a required file is missing; kInvalidRequest when a file is corrupt.
  static Result<ClipTokenizer> LoadFolder(const std::filesystem::path& dir);
  static Result<ClipTokenizer> FromFiles(const ClipTokenizerFiles& files);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // The ids of `utf8` without BOS/EOS and without truncation, as
  // tokenizer(text, add_special_tokens=False).input_ids. kInvalidRequest (field "prompt") when
  // the text is not valid UTF-8. Linear-logarithmic in the text's length.
  Result<std::vector<int32_t>> Tokenize(std::string_view utf8) const;

  // What diffusers feeds the text encoder: tokenizer(text, padding="max_length",
  // max_length=model_max_length, truncation=True): BOS, at most max_length - 2 ids, EOS, then
  // the pad id up to max_length.
  Result<std::vector<int32_t>> Encode(std::string_view utf8) const;

  // A1111's long-prompt chunks (no emphasis or BREAK syntax): the ids in chunks of
  // kChunkTokens (moved at a nearby comma, see ChunkOptions), each chunk BOS + tokens + EOS
  // padded to kChunkTokens + 2, and for a pad different from EOS (SD 2.x) every position after
  // the chunk's first EOS set to the pad id. At least one chunk. For a prompt of at most 75
  // tokens that does not type the EOS token, the one chunk equals Encode's ids.
  Result<std::vector<std::vector<int32_t>>> EncodeChunks(std::string_view utf8,
                                                         const ChunkOptions& options = {}) const;

  // The words of `utf8` as the pre-tokeniser sees them: the letter runs ([\p{L}]+) of the
  // cleaned, lower-cased text, in order, as UTF-8 ("Et bilde av brød!" -> et, bilde, av, brød).
  // For models that list the words they were trained on. kInvalidRequest as Tokenize.
  Result<std::vector<std::string>> Words(std::string_view utf8) const;

  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  int max_length() const;
  size_t vocab_size() const;

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagegen::sd
