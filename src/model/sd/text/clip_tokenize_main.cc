// imagegen-clip-tokenize: the CLIP tokenizer of a model folder on the command line, for parity
// tests and for looking at what a prompt becomes. Reads one JSON string per stdin line and
// writes one JSON object per line: {"ids": [...], "input_ids": [...], "chunks": [[...], ...]}
// (Tokenize, Encode and EncodeChunks of ClipTokenizer), or {"error": {"code", "message"}}.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/sd/text/clip_tokenizer.h"

namespace {

using imagegen::Error;
using nlohmann::json;

json ErrorJson(const Error& error) {
  return json{
      {"error",
       {{"code", std::string(imagegen::ErrorCodeName(error.code))}, {"message", error.message}}}};
}

json Answer(const imagegen::sd::ClipTokenizer& tokenizer, const std::string& line,
            const imagegen::sd::ChunkOptions& options) {
  json input = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded() || !input.is_string()) {
    return ErrorJson(Error::Invalid("line", "each input line must be one JSON string"));
  }
  const std::string text = input.get<std::string>();
  auto ids = tokenizer.Tokenize(text);
  if (!ids) return ErrorJson(ids.error());
  auto encoded = tokenizer.Encode(text);
  if (!encoded) return ErrorJson(encoded.error());
  auto chunks = tokenizer.EncodeChunks(text, options);
  if (!chunks) return ErrorJson(chunks.error());
  return json{{"ids", *ids}, {"input_ids", *encoded}, {"chunks", *chunks}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tokenizes JSON-string lines from stdin with a model folder's CLIP tokenizer"};
  std::string folder;
  imagegen::sd::ChunkOptions options;
  app.add_option("--tokenizer", folder, "folder with vocab.json, merges.txt and configs")
      ->required();
  app.add_option("--comma-backtrack", options.comma_backtrack,
                 "A1111's comma_padding_backtrack for long prompts (0: off)")
      ->check(CLI::Range(0, 75));
  CLI11_PARSE(app, argc, argv);

  auto tokenizer = imagegen::sd::ClipTokenizer::LoadFolder(folder);
  if (!tokenizer) {
    std::cerr << "imagegen-clip-tokenize: " << tokenizer.error().message << "\n";
    return imagegen::ExitCodeFor(tokenizer.error().code);
  }
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::cout << Answer(*tokenizer, line, options).dump() << "\n";
  }
  std::cout.flush();
  return 0;
}
