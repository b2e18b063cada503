// Unicode helpers of the CLIP tokenizer, backed by ICU so that no Unicode table is written by
// hand. Each predicate names the Python function whose behaviour it reproduces, because the
// tokenizer must give the ids that transformers' CLIPTokenizer gives. Internal to model/sd.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imagegen::sd {

// The code points of `utf8`, or nullopt where it is not well-formed UTF-8 (overlong forms,
// surrogates, values above U+10FFFF, truncated sequences).
std::optional<std::u32string> DecodeUtf8(std::string_view utf8);
void AppendUtf8(char32_t code_point, std::string* out);
std::string EncodeUtf8(std::u32string_view text);

// Python's str.isspace(): general category Zs or bidirectional class WS, B or S.
bool IsPythonSpace(char32_t c);
// transformers' _is_control: any general category C* except \t, \n and \r.
bool IsControl(char32_t c);
// transformers' _is_whitespace: space, \t, \n, \r or general category Zs.
bool IsCleanupWhitespace(char32_t c);
// transformers' BasicTokenizer._is_chinese_char: the CJK ideograph blocks it pads with spaces.
bool IsCjkIdeograph(char32_t c);

// The classes of CLIP's pre-tokeniser pattern as the `regex` module matches them with
// IGNORECASE: \p{L}, \p{N}, \s, and [^\s\p{L}\p{N}] (which, case-insensitively, also rejects a
// character whose case variant is a letter or number, e.g. U+0345).
bool IsLetter(char32_t c);
bool IsNumber(char32_t c);
bool IsPatternSpace(char32_t c);
bool IsSymbolRunChar(char32_t c);
// Whether `c` matches the pattern literal `ascii` case-insensitively (simple case folding:
// U+017F LONG S matches 's').
bool MatchesIgnoringCase(char32_t c, char32_t ascii);

// unicodedata.normalize("NFC", text).
std::u32string Nfc(std::u32string_view text);
// str.lower(): full lower-case mapping with the Final_Sigma context, no locale tailoring.
std::u32string Lower(std::u32string_view text);

}  // namespace imagegen::sd
