// Byte-level BPE as CLIP uses it: a word's UTF-8 bytes are first mapped to printable
// characters (ByteToUnicode), the last character carries the end-of-word marker "</w>", and the
// merges are applied in rank order. Internal to model/sd; ClipTokenizer is the public face.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace imagegen::sd {

inline constexpr std::string_view kEndOfWord = "</w>";

// GPT-2/CLIP's reversible byte -> character table: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100.. in byte order, so no byte becomes whitespace or a control.
char32_t ByteToUnicode(uint8_t byte);
// The UTF-8 bytes of `utf8`, each replaced by its ByteToUnicode character (as UTF-8).
std::string ByteEncode(std::string_view utf8);

class BytePairEncoder {
 public:
  using Merge = std::pair<std::string, std::string>;

  // `merges[i]` has rank i; a pair listed twice keeps its last rank, as transformers' dict does.
  explicit BytePairEncoder(const std::vector<Merge>& merges);

  // The pieces of one byte-encoded word (without the marker); the last piece ends in "</w>".
  // Equal to transformers' CLIPTokenizer.bpe, which merges every occurrence of the best-ranked
  // pair before looking for the next one, but O(n log n) in the word's length instead of
  // quadratic, so a megabyte without spaces stays cheap.
  std::vector<std::string> Encode(std::string_view word) const;

  size_t merge_count() const { return merges_.size(); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct MergeResult {
    int32_t rank;
    int32_t merged_symbol;
  };
  int32_t Intern(const std::string& symbol);
  int32_t SymbolId(std::string_view symbol) const;
  const MergeResult* FindMerge(int32_t left, int32_t right) const;

  // Every string that appears in a merge (either side or the result), by id.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> symbol_ids_;
  std::unordered_map<uint64_t, MergeResult> merges_;  // (left id << 32 | right id) -> merge
};

}  // namespace imagegen::sd
