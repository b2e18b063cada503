#include "model/sd/text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/sd/text/byte_pair_encoder.h"
#include "model/sd/text/unicode_text.h"

namespace imagegen::sd {
namespace {

using Pieces = std::vector<std::string>;
using Ids = std::vector<int32_t>;

BytePairEncoder Bpe(const std::vector<BytePairEncoder::Merge>& merges) {
  return BytePairEncoder(merges);
}

TEST(ByteToUnicode, PrintableBytesStayAndOthersMoveAboveLatin1InByteOrder) {
  EXPECT_EQ(ByteToUnicode('A'), U'A');
  EXPECT_EQ(ByteToUnicode('~'), U'~');
  EXPECT_EQ(ByteToUnicode(0xE9), U'\u00E9');
  EXPECT_EQ(ByteToUnicode(0x00), U'\u0100');
  EXPECT_EQ(ByteToUnicode(' '), U'\u0120');   // the 33rd unprintable byte
  EXPECT_EQ(ByteToUnicode(0x7F), U'\u0121');  // then DEL
  EXPECT_EQ(ByteToUnicode(0xAD), U'\u0143');  // soft hyphen, the last one
  EXPECT_EQ(ByteEncode("a b"),
            "a\xC4\xA0"
            "b");
}

TEST(BytePairEncoder, AppliesMergesByRankWithTheEndOfWordMarker) {
  BytePairEncoder bpe = Bpe({{"l", "o"}, {"lo", "w</w>"}, {"e", "r</w>"}, {"lo", "w"}});
  EXPECT_EQ(bpe.Encode("low"), (Pieces{"low</w>"}));
  EXPECT_EQ(bpe.Encode("lower"), (Pieces{"low", "er</w>"}));
  EXPECT_EQ(bpe.Encode("x"), (Pieces{"x</w>"}));
  EXPECT_EQ(bpe.Encode("olw"), (Pieces{"o", "l", "w</w>"}));
}

TEST(BytePairEncoder, MergesEveryOccurrenceOfAPairBeforeBetterPairsItCreates) {
  // transformers merges both (a, b) first: [ab, ab, c</w>]; merging the better-ranked (ab, a)
  // as soon as it appears would give [aba, b, c</w>].
  BytePairEncoder bpe = Bpe({{"ab", "a"}, {"a", "b"}});
  EXPECT_EQ(bpe.Encode("ababc"), (Pieces{"ab", "ab", "c</w>"}));
}

TEST(BytePairEncoder, OverlappingOccurrencesMergeLeftToRight) {
  BytePairEncoder bpe = Bpe({{"a", "a"}});
  EXPECT_EQ(bpe.Encode("aaab"), (Pieces{"aa", "a", "b</w>"}));
}

TEST(BytePairEncoder, ADuplicatedMergeKeepsItsLastRank) {
  BytePairEncoder bpe = Bpe({{"a", "b"}, {"b", "c</w>"}, {"a", "b"}});
  EXPECT_EQ(bpe.Encode("abc"), (Pieces{"a", "bc</w>"}));
}

TEST(BytePairEncoder, AMegabyteWordWithoutSpacesStaysCheap) {
  BytePairEncoder bpe = Bpe({{"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"}, {"a", "a</w>"}});
  const auto start = std::chrono::steady_clock::now();
  Pieces pieces = bpe.Encode(std::string(1 << 20, 'a'));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Each round halves an odd count of symbols and leaves one over: 131071 pieces of eight,
  // then "aaaa", "aa" and "aa</w>".
  ASSERT_EQ(pieces.size(), 131074u);
  EXPECT_EQ(pieces.front(), "aaaaaaaa");
  EXPECT_EQ(pieces[131071], "aaaa");
  EXPECT_EQ(pieces.back(), "aa</w>");
  EXPECT_LT(seconds, 10.0);  // the quadratic algorithm needs hours for this
}

TEST(UnicodeText, ReproducesPythonsPredicates) {
  EXPECT_TRUE(IsPythonSpace(U'\u2028'));
  EXPECT_TRUE(IsPythonSpace(U'\u3000'));
  EXPECT_FALSE(IsPythonSpace(U'\u200B'));
  EXPECT_TRUE(IsControl(U'\u200D'));  // ZWJ: Cf
  EXPECT_TRUE(IsControl(U'\uE000'));  // private use
  EXPECT_TRUE(IsControl(U'\u0378'));  // unassigned
  EXPECT_FALSE(IsControl(U'\n'));
  EXPECT_FALSE(IsSymbolRunChar(U'\u0345'));  // its upper case is a letter
  EXPECT_TRUE(IsSymbolRunChar(U'\u0301'));
  EXPECT_TRUE(MatchesIgnoringCase(U'\u017F', U's'));
  EXPECT_EQ(Lower(U"\u039F\u0394\u039F\u03A3"), U"\u03BF\u03B4\u03BF\u03C2");  // final sigma
  EXPECT_EQ(Lower(U"\u0130"), U"i\u0307");
  EXPECT_EQ(Nfc(U"e\u0301"), U"\u00E9");
  EXPECT_FALSE(DecodeUtf8("\xC0\xAF"));      // overlong '/'
  EXPECT_FALSE(DecodeUtf8("\xED\xA0\x80"));  // a surrogate
  EXPECT_FALSE(DecodeUtf8("\xE2\x82"));      // truncated
  EXPECT_EQ(*DecodeUtf8("\xF0\x9F\x98\x80"), U"\U0001F600");
}

// A hand-made CLIP-style vocabulary: the byte characters of "lowerit'sn!," and of e-acute's
// two UTF-8 bytes (C3 A9 -> U+00C3 U+00A9), their end-of-word forms, a few merges, and the two
// special tokens.
ClipTokenizerFiles TinyFiles() {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (std::string c :
       {"l", "o", "w", "e", "r", "i", "t", "'", "s", "n", "!", ",", "\xC3\x83", "\xC2\xA9"}) {
    vocab[c] = id++;
  }
  for (std::string c :
       {"l", "o", "w", "e", "r", "i", "t", "'", "s", "n", "!", ",", "\xC3\x83", "\xC2\xA9"}) {
    vocab[c + "</w>"] = id++;
  }
  for (std::string t : {"lo", "low", "low</w>", "er</w>", "it</w>", "'s</w>"}) vocab[t] = id++;
  vocab["<|startoftext|>"] = id++;
  vocab["<|endoftext|>"] = id++;
  ClipTokenizerFiles files;
  files.vocab_json = vocab.dump();
  files.merges_txt = "#version: 0.2\nl o\nlo w</w>\nlo w\ne r</w>\ni t</w>\n' s</w>\n";
  return files;
}

int32_t IdIn(const ClipTokenizerFiles& files, const std::string& token) {
  return nlohmann::json::parse(files.vocab_json).at(token).get<int32_t>();
}

TEST(ClipTokenizer, CleansLowerCasesSplitsAndMerges) {
  ClipTokenizerFiles files = TinyFiles();
  auto tokenizer = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  auto id = [&](const std::string& t) { return IdIn(files, t); };
  // Upper case, a zero-width space (removed), an ideographic space, a contraction, a lone
  // combining accent after NFC composes "e" + U+0301 into one letter.
  auto ids = tokenizer->Tokenize("LOW\u200Blow\u3000IT'S lowe\u0301r");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (Ids{id("low"), id("low</w>"), id("it</w>"), id("'s</w>"), id("low"),
                       id("\xC3\x83"), id("\xC2\xA9"), id("r</w>")}));
  // Runs of symbols are one pre-token; unknown pieces become <|endoftext|>.
  ids = tokenizer->Tokenize("!!,x");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (Ids{id("!"), id("!"), id(",</w>"), id("<|endoftext|>")}));
}

TEST(ClipTokenizer, WordsAreTheLowerCasedLetterRunsInUtf8) {
  auto tokenizer = ClipTokenizer::FromFiles(TinyFiles());
  ASSERT_TRUE(tokenizer.ok());
  // Norwegian letters stay inside words; digits, apostrophes and punctuation split them.
  auto words = tokenizer->Words(
      "Et BILDE av br\xC3\xB8"
      "d, 3 croissants!  it's");
  ASSERT_TRUE(words.ok());
  EXPECT_EQ(*words, (std::vector<std::string>{"et", "bilde", "av",
                                              "br\xC3\xB8"
                                              "d",
                                              "croissants", "it", "s"}));
  EXPECT_TRUE(tokenizer->Words("").value().empty());
  EXPECT_FALSE(tokenizer->Words("\xFF").ok());  // not UTF-8
}

TEST(ClipTokenizer, SpecialTokensTypedInThePromptKeepTheirIds) {
  ClipTokenizerFiles files = TinyFiles();
  auto tokenizer = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(tokenizer.ok());
  const int32_t sot = IdIn(files, "<|startoftext|>");
  const int32_t eot = IdIn(files, "<|endoftext|>");
  // Exact case: cut out before cleanup; other case: lower-cased, then matched by the pattern.
  auto ids = tokenizer->Tokenize("low<|startoftext|>low <|EndOfText|>");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (Ids{IdIn(files, "low</w>"), sot, IdIn(files, "low</w>"), eot}));
}

TEST(ClipTokenizer, EncodePadsAndTruncatesToTheModelLength) {
  ClipTokenizerFiles files = TinyFiles();
  auto tokenizer = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(tokenizer.ok());
  auto ids = tokenizer->Encode("low");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 77u);
  EXPECT_EQ((*ids)[0], tokenizer->bos_id());
  EXPECT_EQ((*ids)[1], IdIn(files, "low</w>"));
  EXPECT_EQ((*ids)[2], tokenizer->eos_id());
  EXPECT_EQ((*ids)[76], tokenizer->pad_id());

  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "low ";
  ids = tokenizer->Encode(long_prompt);
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 77u);
  EXPECT_EQ((*ids)[75], IdIn(files, "low</w>"));
  EXPECT_EQ((*ids)[76], tokenizer->eos_id());
}

TEST(ClipTokenizer, LongPromptsChunkAtSeventyFiveTokensAndBackTrackToACommaNearby) {
  ClipTokenizerFiles files = TinyFiles();
  auto tokenizer = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(tokenizer.ok());
  const int32_t low = IdIn(files, "low</w>");
  const int32_t comma = IdIn(files, ",</w>");
  // 70 words, a comma, 10 words: the chunk fills at 75, the comma is 5 back, so the 4 words
  // after it move to the second chunk.
  std::string prompt;
  for (int i = 0; i < 70; ++i) prompt += "low ";
  prompt += ", ";
  for (int i = 0; i < 10; ++i) prompt += "low ";
  auto chunks = tokenizer->EncodeChunks(prompt);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 2u);
  const Ids& first = (*chunks)[0];
  const Ids& second = (*chunks)[1];
  ASSERT_EQ(first.size(), 77u);
  EXPECT_EQ(first[0], tokenizer->bos_id());
  EXPECT_EQ(first[71], comma);
  EXPECT_EQ(first[72], tokenizer->eos_id());  // padding after the comma
  EXPECT_EQ(first[76], tokenizer->eos_id());
  EXPECT_EQ(std::count(second.begin(), second.end(), low), 10);
  EXPECT_EQ(second[11], tokenizer->eos_id());

  auto no_backtrack = tokenizer->EncodeChunks(prompt, ChunkOptions{0});
  ASSERT_TRUE(no_backtrack.ok());
  ASSERT_EQ(no_backtrack->size(), 2u);
  EXPECT_EQ((*no_backtrack)[0][75], low);
  EXPECT_EQ(std::count((*no_backtrack)[1].begin(), (*no_backtrack)[1].end(), low), 6);

  auto empty = tokenizer->EncodeChunks("");
  ASSERT_TRUE(empty.ok());
  ASSERT_EQ(empty->size(), 1u);
  EXPECT_EQ((*empty)[0], *tokenizer->Encode(""));
}

TEST(ClipTokenizer, OpenClipPadTokenFromTheConfigurationIsUsedAndCutOut) {
  ClipTokenizerFiles files = TinyFiles();
  files.tokenizer_config_json = R"({"model_max_length": 77, "pad_token": "!"})";
  auto tokenizer = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  const int32_t bang = IdIn(files, "!");
  EXPECT_EQ(tokenizer->pad_id(), bang);
  auto ids = tokenizer->Encode("low!");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*ids)[2], bang);  // an added token: not "!</w>"
  EXPECT_EQ((*ids)[3], tokenizer->eos_id());
  EXPECT_EQ((*ids)[4], bang);
  // A1111 pads after the first EOS, even a typed one.
  auto chunks = tokenizer->EncodeChunks("low <|endoftext|> low");
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ((*chunks)[0][2], tokenizer->eos_id());
  EXPECT_EQ((*chunks)[0][3], bang);
  EXPECT_EQ((*chunks)[0][76], bang);
}

TEST(ClipTokenizer, TransformersUnsetLengthMeansTheEncodersSeventySevenPositions) {
  ClipTokenizerFiles files = TinyFiles();
  files.tokenizer_config_json = R"({"model_max_length": 1000000000000000019884624838656})";
  auto unset = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(unset.ok()) << unset.error().message;
  EXPECT_EQ(unset->max_length(), 77);
  files.tokenizer_config_json = R"({"model_max_length": 16})";
  auto short_one = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(short_one.ok());
  EXPECT_EQ(short_one->Encode("low")->size(), 16u);
}

TEST(ClipTokenizer, SpecialTokensMapOverridesOnlyWithoutAddedTokensDecoder) {
  ClipTokenizerFiles files = TinyFiles();
  files.special_tokens_map_json = R"({"pad_token": {"content": "!", "lstrip": false}})";
  auto legacy = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(legacy.ok()) << legacy.error().message;
  EXPECT_EQ(legacy->pad_id(), IdIn(files, "!"));
  files.tokenizer_config_json = R"({"added_tokens_decoder": {}})";
  auto current = ClipTokenizer::FromFiles(files);
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->pad_id(), IdIn(files, "<|endoftext|>"));
}

TEST(ClipTokenizer, RefusesCorruptFilesAndPromptsWithClearErrors) {
  auto expect_invalid = [](const ClipTokenizerFiles& files, const std::string& needle) {
    auto tokenizer = ClipTokenizer::FromFiles(files);
    ASSERT_FALSE(tokenizer.ok());
    EXPECT_EQ(tokenizer.error().code, ErrorCode::kInvalidRequest);
    EXPECT_NE(tokenizer.error().message.find(needle), std::string::npos)
        << tokenizer.error().message;
  };
  ClipTokenizerFiles files = TinyFiles();
  files.vocab_json = "{\"a\": 1,";
  expect_invalid(files, "vocab.json");
  files.vocab_json = R"({"a": "one"})";
  expect_invalid(files, "vocab.json");
  files = TinyFiles();
  files.merges_txt = "#version: 0.2\nl o w\n";
  expect_invalid(files, "merges.txt: line 2");
  files.merges_txt = "#version: 0.2\nl \xFF\n";
  expect_invalid(files, "UTF-8");
  files = TinyFiles();
  files.tokenizer_config_json = R"({"bos_token": "<|missing|>"})";
  expect_invalid(files, "<|missing|>");
  files.tokenizer_config_json = R"({"model_max_length": 2})";
  expect_invalid(files, "model_max_length");
  files.tokenizer_config_json = R"({"model_max_length": 77.5})";
  expect_invalid(files, "model_max_length");
  files.tokenizer_config_json = "[1]";
  expect_invalid(files, "tokenizer_config.json");

  auto tokenizer = ClipTokenizer::FromFiles(TinyFiles());
  ASSERT_TRUE(tokenizer.ok());
  auto bad = tokenizer->Tokenize("low \xC3");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(bad.error().field, "prompt");
}

TEST(ClipTokenizer, LoadsAFolderAndReportsMissingFiles) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("clip_tokenizer_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ClipTokenizerFiles files = TinyFiles();
  std::ofstream(dir / "vocab.json") << files.vocab_json;
  auto missing = ClipTokenizer::LoadFolder(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("merges.txt"), std::string::npos);
  std::ofstream(dir / "merges.txt") << files.merges_txt;
  auto loaded = ClipTokenizer::LoadFolder(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->vocab_size(), nlohmann::json::parse(files.vocab_json).size());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace imagegen::sd
