// libFuzzer target for the CLIP tokenizer (tests/fuzz/run.sh). The first byte picks the mode:
// even: the input is a prompt for a fixed small vocabulary (cleanup, pattern, BPE, chunks);
// odd: the input is four files separated by "\0\0" (vocab.json, merges.txt,
// tokenizer_config.json, special_tokens_map.json) and a prompt, so the loaders see hostile
// files. Either must end in a Result, never a crash, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/sd/text/clip_tokenizer.h"

namespace {

using imagegen::sd::ClipTokenizer;
using imagegen::sd::ClipTokenizerFiles;

const ClipTokenizer& FixedTokenizer() {
  static const ClipTokenizer tokenizer = [] {
    ClipTokenizerFiles files;
    files.vocab_json =
        R"({"a":0,"b":1,"c":2,"!":3,"a</w>":4,"b</w>":5,"c</w>":6,"!</w>":7,",</w>":8,)"
        R"("ab":9,"ab</w>":10,"abc</w>":11,"<|startoftext|>":12,"<|endoftext|>":13})";
    files.merges_txt = "#version: 0.2\na b\na b</w>\nab c</w>\n";
    files.tokenizer_config_json = R"({"pad_token": "!"})";
    auto loaded = ClipTokenizer::FromFiles(files);
    if (!loaded) __builtin_trap();
    return std::move(*loaded);
  }();
  return tokenizer;
}

void Exercise(const ClipTokenizer& tokenizer, std::string_view prompt) {
  auto ids = tokenizer.Tokenize(prompt);
  auto encoded = tokenizer.Encode(prompt);
  auto chunks = tokenizer.EncodeChunks(prompt);
  if (ids.ok() != encoded.ok() || ids.ok() != chunks.ok()) __builtin_trap();
  if (encoded.ok() && encoded->size() != static_cast<size_t>(tokenizer.max_length())) {
    __builtin_trap();
  }
  if (chunks.ok() && chunks->empty()) __builtin_trap();
}

std::vector<std::string> SplitParts(std::string_view data) {
  std::vector<std::string> parts;
  while (parts.size() < 4) {
    size_t separator = data.find(std::string_view("\0\0", 2));
    parts.emplace_back(data.substr(0, separator));
    data = separator == std::string_view::npos ? std::string_view() : data.substr(separator + 2);
  }
  parts.emplace_back(data);
  return parts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    Exercise(FixedTokenizer(), input);
    return 0;
  }
  std::vector<std::string> parts = SplitParts(input);
  ClipTokenizerFiles files{parts[0], parts[1], parts[2], parts[3], {}};
  auto tokenizer = ClipTokenizer::FromFiles(files);
  if (tokenizer.ok()) Exercise(*tokenizer, parts[4]);
  return 0;
}
