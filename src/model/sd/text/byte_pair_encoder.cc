#include "model/sd/text/byte_pair_encoder.h"

#include <array>
#include <queue>

#include "model/sd/text/unicode_text.h"

namespace imagegen::sd {
namespace {

std::array<char32_t, 256> BuildByteTable() {
  std::array<char32_t, 256> table{};
  char32_t next_unprintable = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next_unprintable++;
  }
  return table;
}

// One symbol of the word being merged: a byte span of the encoded word, linked to its
// neighbours. Merging extends the left symbol and retires the right one.
struct Symbol {
  uint32_t begin;
  uint32_t end;
  int32_t id;  // symbol id, or -1 for a string that no merge mentions
  int32_t prev;
  int32_t next;
};

struct Candidate {
  int32_t rank;
  int32_t left;  // symbol index; indices follow positions, so ties go left to right
  int32_t left_id;
  int32_t right_id;
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : left > other.left;
  }
};

size_t Utf8Length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

char32_t ByteToUnicode(uint8_t byte) {
  static const std::array<char32_t, 256> table = BuildByteTable();
  return table[byte];
}

std::string ByteEncode(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() * 2);
  for (char c : utf8) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), &out);
  return out;
}

BytePairEncoder::BytePairEncoder(const std::vector<Merge>& merges) {
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t left_id = Intern(left);
    const int32_t right_id = Intern(right);
    const int32_t merged_id = Intern(left + right);
    const uint64_t key = (static_cast<uint64_t>(left_id) << 32) | static_cast<uint32_t>(right_id);
    merges_[key] = MergeResult{static_cast<int32_t>(rank), merged_id};
  }
}

int32_t BytePairEncoder::Intern(const std::string& symbol) {
  auto [it, inserted] = symbol_ids_.try_emplace(symbol, static_cast<int32_t>(symbol_ids_.size()));
  return it->second;
}

int32_t BytePairEncoder::SymbolId(std::string_view symbol) const {
  auto it = symbol_ids_.find(symbol);
  return it == symbol_ids_.end() ? -1 : it->second;
}

const BytePairEncoder::MergeResult* BytePairEncoder::FindMerge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  auto it = merges_.find((static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<std::string> BytePairEncoder::Encode(std::string_view word) const {
  if (word.empty()) return {};
  std::string text(word);
  text.append(kEndOfWord);
  std::vector<Symbol> symbols;
  for (uint32_t pos = 0; pos < word.size();) {
    const uint32_t end = static_cast<uint32_t>(
        std::min(word.size(), pos + Utf8Length(static_cast<uint8_t>(word[pos]))));
    symbols.push_back(Symbol{pos, end, -1, static_cast<int32_t>(symbols.size()) - 1,
                             static_cast<int32_t>(symbols.size()) + 1});
    pos = end;
  }
  symbols.back().end = static_cast<uint32_t>(text.size());
  symbols.back().next = -1;
  for (auto& s : symbols) s.id = SymbolId(std::string_view(text).substr(s.begin, s.end - s.begin));

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto candidate_at = [&](int32_t left, std::vector<Candidate>* deferred, int32_t current_rank) {
    if (left < 0 || symbols[static_cast<size_t>(left)].next < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(l.next)];
    const MergeResult* merge = FindMerge(l.id, r.id);
    if (merge == nullptr) return;
    Candidate c{merge->rank, left, l.id, r.id};
    // transformers merges every occurrence of one pair before it looks at new pairs, even
    // better-ranked ones that the merging created; those wait for the next round.
    if (deferred != nullptr && merge->rank <= current_rank) {
      deferred->push_back(c);
    } else {
      queue.push(c);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) {
    candidate_at(i, nullptr, 0);
  }

  std::vector<Candidate> deferred;
  while (!queue.empty()) {
    const int32_t rank = queue.top().rank;
    deferred.clear();
    while (!queue.empty() && queue.top().rank == rank) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& l = symbols[static_cast<size_t>(c.left)];
      if (l.id != c.left_id || l.next < 0) continue;  // stale: the left symbol changed
      Symbol& r = symbols[static_cast<size_t>(l.next)];
      if (r.id != c.right_id) continue;  // stale: the right neighbour changed
      l.end = r.end;
      l.id = FindMerge(c.left_id, c.right_id)->merged_symbol;
      l.next = r.next;
      if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = c.left;
      r.id = -2;  // retired
      candidate_at(l.prev, &deferred, rank);
      candidate_at(c.left, &deferred, rank);
    }
    for (const Candidate& c : deferred) queue.push(c);
  }

  std::vector<std::string> pieces;
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    pieces.push_back(text.substr(s.begin, s.end - s.begin));
  }
  return pieces;
}

}  // namespace imagegen::sd
