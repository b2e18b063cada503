#include "model/sd/text/clip_tokenizer.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "model/sd/text/byte_pair_encoder.h"
#include "model/sd/text/unicode_text.h"

namespace imagegen::sd {
namespace {

using nlohmann::json;

// transformers reads at most this many merges (CLIP's 49152-token vocabulary less the 256 bytes
// and the 2 special tokens), counted from the line after the first.
constexpr size_t kMaxMerges = 49152 - 256 - 2;
// A bound on every file read, far above CLIP's (vocab.json is 1.6 MB).
constexpr std::uintmax_t kMaxFileBytes = 64u << 20;
// The word cache: words up to this many bytes, this many entries, then it starts over.
constexpr size_t kCacheWordBytes = 64;
constexpr size_t kCacheEntries = 16384;
// CLIPTokenizer's cache answers these two strings as themselves, without "</w>" or BPE.
constexpr std::string_view kStartOfText = "<|startoftext|>";
constexpr std::string_view kEndOfText = "<|endoftext|>";

Error Corrupt(const std::string& file, const std::string& what) {
  return Error::Make(ErrorCode::kInvalidRequest, "tokenizer " + file + ": " + what);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A token cut out of the text before cleanup (transformers' AddedToken).
struct AddedToken {
  std::string content;
  bool lstrip = false;
  bool rstrip = false;
};

Result<IdMap> ParseVocab(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Corrupt("vocab.json", "not a JSON object");
  }
  IdMap vocab;
  for (const auto& [token, id] : doc.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return Corrupt("vocab.json", "the id of \"" + token + "\" is not an integer in 0..2^31-1");
    }
    vocab[token] = static_cast<int32_t>(id.get<int64_t>());
  }
  if (vocab.empty()) return Corrupt("vocab.json", "no tokens");
  return vocab;
}

bool IsAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !IsAsciiSpace(line[i])) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

// As transformers: the text stripped, its first line (the "#version" header) skipped, then up
// to kMaxMerges lines, each rank its line number. Blank lines keep their rank and merge
// nothing; a line that is not exactly two fields is refused (transformers would ignore it).
Result<std::vector<BytePairEncoder::Merge>> ParseMerges(const std::string& text) {
  if (!DecodeUtf8(text)) return Corrupt("merges.txt", "not valid UTF-8");
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsAsciiSpace(text[begin])) ++begin;
  while (end > begin && IsAsciiSpace(text[end - 1])) --end;
  std::string_view body = std::string_view(text).substr(begin, end - begin);
  size_t first_newline = body.find('\n');
  if (first_newline == std::string_view::npos) return std::vector<BytePairEncoder::Merge>{};
  body.remove_prefix(first_newline + 1);

  std::vector<BytePairEncoder::Merge> merges;
  size_t line_number = 2;
  while (merges.size() < kMaxMerges && !body.empty()) {
    size_t newline = body.find('\n');
    std::string_view line = body.substr(0, newline);
    body.remove_prefix(newline == std::string_view::npos ? body.size() : newline + 1);
    std::vector<std::string_view> fields = SplitFields(line);
    if (fields.size() == 2) {
      merges.emplace_back(std::string(fields[0]), std::string(fields[1]));
    } else if (!fields.empty()) {
      return Corrupt("merges.txt",
                     "line " + std::to_string(line_number) + " is not two space-separated symbols");
    } else {
      merges.emplace_back();  // keeps the ranks of later lines; matches no pair of symbols
    }
    ++line_number;
  }
  return merges;
}

Result<json> ParseConfig(const std::string& file, const std::string& text) {
  if (text.empty()) return json::object();
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Corrupt(file, "not a JSON object");
  return doc;
}

// A special token as a configuration file writes it: "text" or {"content": "text", ...}.
Result<AddedToken> ParseAddedToken(const std::string& file, const std::string& key,
                                   const json& value) {
  AddedToken token;
  if (value.is_string()) {
    token.content = value.get<std::string>();
    return token;
  }
  if (!value.is_object() || !value.contains("content") || !value["content"].is_string()) {
    return Corrupt(file, key + " is neither a string nor an object with a \"content\" string");
  }
  token.content = value["content"].get<std::string>();
  auto flag = [&](const char* name) { return value.value(name, json(false)) == json(true); };
  token.lstrip = flag("lstrip");
  token.rstrip = flag("rstrip");
  if (flag("single_word")) return Corrupt(file, key + ": single_word tokens are not supported");
  return token;
}

}  // namespace

struct ClipTokenizer::Impl {
  IdMap vocab;
  IdMap added_ids;                  // added token -> id; wins over vocab, as in transformers
  std::vector<AddedToken> cut_out;  // tokens cut out of the text before cleanup
  std::vector<std::u32string> cut_out_text;  // the same, decoded
  BytePairEncoder bpe{std::vector<BytePairEncoder::Merge>{}};
  int32_t bos = 0, eos = 0, pad = 0, unk = 0, comma = -1;
  int max_length = 77;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  int32_t IdOf(std::string_view token) const {
    if (auto it = added_ids.find(token); it != added_ids.end()) return it->second;
    if (auto it = vocab.find(token); it != vocab.end()) return it->second;
    return unk;
  }
  std::optional<int32_t> KnownId(std::string_view token) const {
    if (auto it = added_ids.find(token); it != added_ids.end()) return it->second;
    if (auto it = vocab.find(token); it != vocab.end()) return it->second;
    return std::nullopt;
  }

  void AppendWordIds(std::string_view encoded, std::vector<int32_t>* ids) const;
  void AppendTextIds(std::u32string_view text, std::vector<int32_t>* ids) const;
  std::vector<int32_t> TokenizeChecked(std::u32string_view text) const;
};

namespace {

// transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize, joined
// with spaces as CLIPTokenizer does: cleanup, CJK spacing, NFC, whitespace split, lower case.
std::vector<std::u32string> CleanWords(std::u32string_view text) {
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD || IsControl(c)) continue;
    if (IsCleanupWhitespace(c)) {
      cleaned.push_back(U' ');
    } else if (IsCjkIdeograph(c)) {
      cleaned.append({U' ', c, U' '});
    } else {
      cleaned.push_back(c);
    }
  }
  std::u32string normalized = Nfc(cleaned);
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < normalized.size()) {
    while (i < normalized.size() && IsPythonSpace(normalized[i])) ++i;
    size_t start = i;
    while (i < normalized.size() && !IsPythonSpace(normalized[i])) ++i;
    if (i > start) words.push_back(Lower(std::u32string_view(normalized).substr(start, i - start)));
  }
  return words;
}

bool MatchesLiteral(std::u32string_view text, size_t pos, std::string_view ascii) {
  if (text.size() - pos < ascii.size()) return false;
  for (size_t k = 0; k < ascii.size(); ++k) {
    if (!MatchesIgnoringCase(text[pos + k], static_cast<char32_t>(ascii[k]))) return false;
  }
  return true;
}

// Length of the match of CLIP's pattern at `pos`, tried in the pattern's order:
// <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (IGNORECASE). 0 where nothing matches and findall moves on by one character.
size_t MatchAt(std::u32string_view word, size_t pos) {
  static constexpr std::string_view kLiterals[] = {kStartOfText, kEndOfText, "'s",  "'t", "'re",
                                                   "'ve",        "'m",       "'ll", "'d"};
  for (std::string_view literal : kLiterals) {
    if (MatchesLiteral(word, pos, literal)) return literal.size();
  }
  auto run = [&](bool (*in_class)(char32_t)) {
    size_t end = pos;
    while (end < word.size() && in_class(word[end])) ++end;
    return end - pos;
  };
  if (IsLetter(word[pos])) return run(IsLetter);
  if (IsNumber(word[pos])) return 1;
  return run(IsSymbolRunChar);
}

// Leftmost-longest occurrences of the cut-out tokens in `text`, as transformers' Trie.split
// finds them: pieces of plain text and indices of added tokens, in order.
struct Piece {
  std::u32string text;
  int added = -1;  // index into cut_out, or -1 for plain text
};

std::vector<Piece> CutOutAddedTokens(std::u32string_view text,
                                     const std::vector<std::u32string>& tokens) {
  std::vector<Piece> pieces;
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int best = -1;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const std::u32string& token = tokens[t];
      if (text.substr(pos, token.size()) == token &&
          (best < 0 || token.size() > tokens[static_cast<size_t>(best)].size())) {
        best = static_cast<int>(t);
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    pieces.push_back(Piece{std::u32string(text.substr(plain_start, pos - plain_start)), -1});
    pieces.push_back(Piece{{}, best});
    pos += tokens[static_cast<size_t>(best)].size();
    plain_start = pos;
  }
  pieces.push_back(Piece{std::u32string(text.substr(plain_start)), -1});
  return pieces;
}

void StripPythonSpace(std::u32string* text, bool left, bool right) {
  size_t begin = 0;
  size_t end = text->size();
  if (left) {
    while (begin < end && IsPythonSpace((*text)[begin])) ++begin;
  }
  if (right) {
    while (end > begin && IsPythonSpace((*text)[end - 1])) --end;
  }
  *text = text->substr(begin, end - begin);
}

}  // namespace

void ClipTokenizer::Impl::AppendWordIds(std::string_view encoded, std::vector<int32_t>* ids) const {
  if (encoded == kStartOfText || encoded == kEndOfText) {
    ids->push_back(IdOf(encoded));
    return;
  }
  const bool cacheable = encoded.size() <= kCacheWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto it = cache.find(std::string(encoded)); it != cache.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids;
  for (const std::string& piece : bpe.Encode(encoded)) word_ids.push_back(IdOf(piece));
  ids->insert(ids->end(), word_ids.begin(), word_ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kCacheEntries) cache.clear();
    cache.emplace(std::string(encoded), std::move(word_ids));
  }
}

void ClipTokenizer::Impl::AppendTextIds(std::u32string_view text, std::vector<int32_t>* ids) const {
  for (const std::u32string& word : CleanWords(text)) {
    size_t pos = 0;
    while (pos < word.size()) {
      size_t length = MatchAt(word, pos);
      if (length == 0) {
        ++pos;
        continue;
      }
      AppendWordIds(ByteEncode(EncodeUtf8(std::u32string_view(word).substr(pos, length))), ids);
      pos += length;
    }
  }
}

std::vector<int32_t> ClipTokenizer::Impl::TokenizeChecked(std::u32string_view text) const {
  std::vector<Piece> pieces = CutOutAddedTokens(text, cut_out_text);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].added < 0) continue;
    const AddedToken& token = cut_out[static_cast<size_t>(pieces[i].added)];
    // rstrip eats the spaces on the token's right, lstrip those on its left.
    if (token.rstrip && i + 1 < pieces.size()) StripPythonSpace(&pieces[i + 1].text, true, false);
    if (token.lstrip && i > 0) StripPythonSpace(&pieces[i - 1].text, false, true);
  }
  std::vector<int32_t> ids;
  for (const Piece& piece : pieces) {
    if (piece.added >= 0) {
      ids.push_back(IdOf(cut_out[static_cast<size_t>(piece.added)].content));
    } else if (!piece.text.empty()) {
      AppendTextIds(piece.text, &ids);
    }
  }
  return ids;
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

int32_t ClipTokenizer::bos_id() const { return impl_->bos; }
int32_t ClipTokenizer::eos_id() const { return impl_->eos; }
int32_t ClipTokenizer::pad_id() const { return impl_->pad; }
int32_t ClipTokenizer::unk_id() const { return impl_->unk; }
int ClipTokenizer::max_length() const { return impl_->max_length; }
size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }

Result<std::vector<int32_t>> ClipTokenizer::Tokenize(std::string_view utf8) const {
  std::optional<std::u32string> text = DecodeUtf8(utf8);
  if (!text) return Error::Invalid("prompt", "the prompt is not valid UTF-8");
  try {
    return impl_->TokenizeChecked(*text);
  } catch (const std::exception& e) {  // ICU failures only: its data is part of the library
    return Error::Make(ErrorCode::kInternal, std::string("tokenizer: ") + e.what());
  }
}

Result<std::vector<std::string>> ClipTokenizer::Words(std::string_view utf8) const {
  std::optional<std::u32string> text = DecodeUtf8(utf8);
  if (!text) return Error::Invalid("prompt", "the prompt is not valid UTF-8");
  std::vector<std::string> words;
  try {
    for (const std::u32string& piece : CleanWords(*text)) {
      size_t pos = 0;
      while (pos < piece.size()) {
        size_t end = pos;
        while (end < piece.size() && IsLetter(piece[end])) ++end;
        if (end > pos)
          words.push_back(EncodeUtf8(std::u32string_view(piece).substr(pos, end - pos)));
        pos = std::max(end, pos + 1);
      }
    }
  } catch (const std::exception& e) {
    return Error::Make(ErrorCode::kInternal, std::string("tokenizer: ") + e.what());
  }
  return words;
}

Result<std::vector<int32_t>> ClipTokenizer::Encode(std::string_view utf8) const {
  Result<std::vector<int32_t>> tokens = Tokenize(utf8);
  if (!tokens) return tokens.error();
  const size_t room = static_cast<size_t>(impl_->max_length - 2);
  std::vector<int32_t> ids{impl_->bos};
  ids.insert(ids.end(), tokens->begin(), tokens->begin() + std::min(room, tokens->size()));
  ids.push_back(impl_->eos);
  ids.resize(static_cast<size_t>(impl_->max_length), impl_->pad);
  return ids;
}

Result<std::vector<std::vector<int32_t>>> ClipTokenizer::EncodeChunks(
    std::string_view utf8, const ChunkOptions& options) const {
  Result<std::vector<int32_t>> tokens = Tokenize(utf8);
  if (!tokens) return tokens.error();
  const size_t full = kChunkTokens;
  std::vector<std::vector<int32_t>> chunks;
  std::vector<int32_t> chunk;
  std::ptrdiff_t last_comma = -1;
  auto next_chunk = [&] {
    chunk.resize(full, impl_->eos);
    chunk.insert(chunk.begin(), impl_->bos);
    chunk.push_back(impl_->eos);
    chunks.push_back(std::move(chunk));
    chunk.clear();
    last_comma = -1;
  };
  for (int32_t token : *tokens) {
    if (token == impl_->comma) {
      last_comma = static_cast<std::ptrdiff_t>(chunk.size());
    } else if (options.comma_backtrack != 0 && chunk.size() == full && last_comma != -1 &&
               static_cast<std::ptrdiff_t>(chunk.size()) - last_comma <= options.comma_backtrack) {
      std::vector<int32_t> moved(chunk.begin() + last_comma + 1, chunk.end());
      chunk.resize(static_cast<size_t>(last_comma + 1));
      next_chunk();
      chunk = std::move(moved);
    }
    if (chunk.size() == full) next_chunk();
    chunk.push_back(token);
  }
  if (!chunk.empty() || chunks.empty()) next_chunk();
  if (impl_->pad != impl_->eos) {
    // A1111 pads SD 2.x chunks after the first end-of-text token, typed or not.
    for (auto& c : chunks) {
      auto first_eos = std::find(c.begin(), c.end(), impl_->eos);
      if (first_eos != c.end()) std::fill(first_eos + 1, c.end(), impl_->pad);
    }
  }
  return chunks;
}

namespace {

// The special tokens as transformers settles them: tokenizer_config.json's values; when it has
// no added_tokens_decoder (older folders), special_tokens_map.json's values override them.
struct SpecialTokens {
  AddedToken bos{std::string(kStartOfText)};
  AddedToken eos{std::string(kEndOfText)};
  AddedToken unk{std::string(kEndOfText)};
  AddedToken pad{std::string(kEndOfText)};
  std::vector<AddedToken> additional;
};

Status ReadSpecialTokens(const std::string& file, const json& config, SpecialTokens* out) {
  const std::pair<const char*, AddedToken*> keys[] = {{"bos_token", &out->bos},
                                                      {"eos_token", &out->eos},
                                                      {"unk_token", &out->unk},
                                                      {"pad_token", &out->pad}};
  for (const auto& [key, token] : keys) {
    if (!config.contains(key)) continue;
    if (config[key].is_null()) return Corrupt(file, std::string(key) + " is null");
    Result<AddedToken> parsed = ParseAddedToken(file, key, config[key]);
    if (!parsed) return parsed.error();
    *token = *parsed;
  }
  if (config.contains("additional_special_tokens")) {
    const json& list = config["additional_special_tokens"];
    if (!list.is_array()) return Corrupt(file, "additional_special_tokens is not a list");
    out->additional.clear();
    for (const json& item : list) {
      Result<AddedToken> parsed = ParseAddedToken(file, "additional_special_tokens", item);
      if (!parsed) return parsed.error();
      out->additional.push_back(*parsed);
    }
  }
  return Status::Ok();
}

Status ReadAddedTokens(const json& config, const json& legacy_added, IdMap* ids,
                       std::vector<AddedToken>* tokens) {
  if (config.contains("added_tokens_decoder")) {
    const json& decoder = config["added_tokens_decoder"];
    if (!decoder.is_object()) return Corrupt("tokenizer_config.json", "bad added_tokens_decoder");
    for (const auto& [key, value] : decoder.items()) {
      int64_t id = -1;
      auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > INT32_MAX) {
        return Corrupt("tokenizer_config.json", "added token id \"" + key + "\" is not an id");
      }
      Result<AddedToken> token = ParseAddedToken("tokenizer_config.json", key, value);
      if (!token) return token.error();
      (*ids)[token->content] = static_cast<int32_t>(id);
      tokens->push_back(*token);
    }
    return Status::Ok();
  }
  for (const auto& [content, id] : legacy_added.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return Corrupt("added_tokens.json", "the id of \"" + content + "\" is not an id");
    }
    (*ids)[content] = static_cast<int32_t>(id.get<int64_t>());
    tokens->push_back(AddedToken{content});
  }
  return Status::Ok();
}

Result<int> ReadMaxLength(const json& config) {
  if (!config.contains("model_max_length")) return 77;
  const json& value = config["model_max_length"];
  // transformers writes int(1e30) when no length was set; CLIP's text encoders have 77 positions.
  if (value.is_number() && value.get<double>() >= 1e29) return 77;
  if (!value.is_number_integer() || value.get<int64_t>() < 3 || value.get<int64_t>() > 4096) {
    return Corrupt("tokenizer_config.json", "model_max_length is not an integer in 3..4096");
  }
  return static_cast<int>(value.get<int64_t>());
}

Result<std::string> ReadFile(const std::filesystem::path& path, bool required) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    if (!required) return std::string();
    return Error::Make(ErrorCode::kNotFound, "tokenizer: cannot find " + path.string());
  }
  if (std::filesystem::file_size(path, ec) > kMaxFileBytes) {
    return Corrupt(path.filename().string(), "larger than 64 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Error::Make(ErrorCode::kNotFound, "tokenizer: cannot read " + path.string());
  return text.str();
}

}  // namespace

Result<ClipTokenizer> ClipTokenizer::FromFiles(const ClipTokenizerFiles& files) {
  auto impl = std::make_unique<Impl>();
  Result<IdMap> vocab = ParseVocab(files.vocab_json);
  if (!vocab) return vocab.error();
  impl->vocab = std::move(*vocab);
  Result<std::vector<BytePairEncoder::Merge>> merges = ParseMerges(files.merges_txt);
  if (!merges) return merges.error();
  impl->bpe = BytePairEncoder(*merges);

  Result<json> config = ParseConfig("tokenizer_config.json", files.tokenizer_config_json);
  if (!config) return config.error();
  Result<json> map = ParseConfig("special_tokens_map.json", files.special_tokens_map_json);
  if (!map) return map.error();
  Result<json> legacy = ParseConfig("added_tokens.json", files.added_tokens_json);
  if (!legacy) return legacy.error();

  SpecialTokens special;
  if (Status s = ReadSpecialTokens("tokenizer_config.json", *config, &special); !s)
    return s.error();
  if (!config->contains("added_tokens_decoder")) {
    if (Status s = ReadSpecialTokens("special_tokens_map.json", *map, &special); !s) {
      return s.error();
    }
  }
  if (Status s = ReadAddedTokens(*config, *legacy, &impl->added_ids, &impl->cut_out); !s) {
    return s.error();
  }
  // The special tokens are cut out too; an entry of added_tokens_decoder keeps its own flags.
  std::vector<AddedToken> specials{special.bos, special.eos, special.unk, special.pad};
  specials.insert(specials.end(), special.additional.begin(), special.additional.end());
  for (const AddedToken& token : specials) {
    auto same = [&](const AddedToken& t) { return t.content == token.content; };
    if (!token.content.empty() && std::none_of(impl->cut_out.begin(), impl->cut_out.end(), same)) {
      impl->cut_out.push_back(token);
    }
  }
  std::erase_if(impl->cut_out, [](const AddedToken& t) { return t.content.empty(); });
  for (const AddedToken& token : impl->cut_out) {
    std::optional<std::u32string> text = DecodeUtf8(token.content);
    if (!text) return Corrupt("configuration", "an added token is not UTF-8");
    impl->cut_out_text.push_back(std::move(*text));
  }

  const std::pair<const AddedToken*, int32_t*> ids[] = {{&special.bos, &impl->bos},
                                                        {&special.eos, &impl->eos},
                                                        {&special.unk, &impl->unk},
                                                        {&special.pad, &impl->pad}};
  for (const auto& [token, id] : ids) {
    std::optional<int32_t> known = impl->KnownId(token->content);
    if (!known) {
      return Corrupt("vocab.json", "the special token \"" + token->content + "\" has no id");
    }
    *id = *known;
  }
  impl->comma = impl->KnownId(",</w>").value_or(-1);
  Result<int> max_length = ReadMaxLength(*config);
  if (!max_length) return max_length.error();
  impl->max_length = *max_length;
  return ClipTokenizer(std::move(impl));
}

Result<ClipTokenizer> ClipTokenizer::LoadFolder(const std::filesystem::path& dir) {
  ClipTokenizerFiles files;
  const std::tuple<const char*, std::string*, bool> names[] = {
      {"vocab.json", &files.vocab_json, true},
      {"merges.txt", &files.merges_txt, true},
      {"tokenizer_config.json", &files.tokenizer_config_json, false},
      {"special_tokens_map.json", &files.special_tokens_map_json, false},
      {"added_tokens.json", &files.added_tokens_json, false}};
  for (const auto& [name, text, required] : names) {
    Result<std::string> read = ReadFile(dir / name, required);
    if (!read) return read.error();
    *text = std::move(*read);
  }
  return FromFiles(files);
}

}  // namespace imagegen::sd
