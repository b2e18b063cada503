// String helpers shared by every module (one copy each).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace imagegen {

// ASCII lower case; other bytes unchanged.
std::string Lower(std::string_view text);
// Without leading and trailing whitespace (space, \t, \r, \n, \v, \f).
std::string Trim(std::string_view text);
// Appends the UTF-8 encoding of `code_point`; a surrogate or a value past U+10FFFF becomes
// U+FFFD, so the output is always valid UTF-8.
void AppendCodePoint(uint32_t code_point, std::string* out);

}  // namespace imagegen
