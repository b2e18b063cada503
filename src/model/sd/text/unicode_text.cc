#include "model/sd/text/unicode_text.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <stdexcept>

namespace imagegen::sd {
namespace {

bool InCategories(char32_t c, uint32_t mask) {
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & mask) != 0;
}

icu::UnicodeString ToIcu(std::u32string_view text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string FromIcu(const icu::UnicodeString& text) {
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = text.toUTF32(nullptr, 0, status);  // preflight: the length only
  std::u32string out(static_cast<size_t>(length), U'\0');
  status = U_ZERO_ERROR;
  text.toUTF32(reinterpret_cast<UChar32*>(out.data()), length, status);
  if (U_FAILURE(status) && status != U_STRING_NOT_TERMINATED_WARNING) {
    throw std::runtime_error(std::string("ICU UTF-32 conversion: ") + u_errorName(status));
  }
  return out;
}

// The letters, numbers and spaces a character's simple case variants belong to: the `regex`
// module's case-insensitive negated class tests every variant, not only the character.
bool AnyCaseVariant(char32_t c, bool (*predicate)(char32_t)) {
  const UChar32 cp = static_cast<UChar32>(c);
  for (UChar32 variant :
       {u_foldCase(cp, U_FOLD_CASE_DEFAULT), u_toupper(cp), u_tolower(cp), u_totitle(cp)}) {
    if (predicate(static_cast<char32_t>(variant))) return true;
  }
  return false;
}

}  // namespace

std::optional<std::u32string> DecodeUtf8(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(utf8.data());
  const int32_t length = static_cast<int32_t>(utf8.size());
  int32_t i = 0;
  while (i < length) {
    UChar32 c = 0;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) return std::nullopt;
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

void AppendUtf8(char32_t code_point, std::string* out) {
  uint8_t buffer[U8_MAX_LENGTH];
  int32_t length = 0;
  UBool error = false;
  U8_APPEND(buffer, length, U8_MAX_LENGTH, static_cast<UChar32>(code_point), error);
  if (!error) out->append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) AppendUtf8(c, &out);
  return out;
}

bool IsPythonSpace(char32_t c) {
  if (InCategories(c, U_GC_ZS_MASK)) return true;
  switch (u_charDirection(static_cast<UChar32>(c))) {
    case U_WHITE_SPACE_NEUTRAL:
    case U_BLOCK_SEPARATOR:
    case U_SEGMENT_SEPARATOR:
      // Python takes the class from UnicodeData.txt, which lists it for assigned characters
      // only; ICU also gives defaults to unassigned ones.
      return !InCategories(c, U_GC_CN_MASK);
    default:
      return false;
  }
}

bool IsControl(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  return InCategories(c, U_GC_C_MASK);
}

bool IsCleanupWhitespace(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || InCategories(c, U_GC_ZS_MASK);
}

bool IsCjkIdeograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool IsLetter(char32_t c) { return InCategories(c, U_GC_L_MASK); }
bool IsNumber(char32_t c) { return InCategories(c, U_GC_N_MASK); }
bool IsPatternSpace(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool IsSymbolRunChar(char32_t c) {
  return !AnyCaseVariant(c, IsPatternSpace) && !AnyCaseVariant(c, IsLetter) &&
         !AnyCaseVariant(c, IsNumber) && !IsPatternSpace(c) && !IsLetter(c) && !IsNumber(c);
}

bool MatchesIgnoringCase(char32_t c, char32_t ascii) {
  return u_foldCase(static_cast<UChar32>(c), U_FOLD_CASE_DEFAULT) ==
         u_foldCase(static_cast<UChar32>(ascii), U_FOLD_CASE_DEFAULT);
}

std::u32string Nfc(std::u32string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU NFC: ") + u_errorName(status));
  icu::UnicodeString normalized = nfc->normalize(ToIcu(text), status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU NFC: ") + u_errorName(status));
  return FromIcu(normalized);
}

std::u32string Lower(std::u32string_view text) {
  icu::UnicodeString s = ToIcu(text);
  s.toLower(icu::Locale::getRoot());
  return FromIcu(s);
}

}  // namespace imagegen::sd
