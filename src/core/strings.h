// String helpers shared by every module (one copy each).
#pragma once

#include <string>
#include <string_view>

namespace imagegen {

// ASCII lower case; other bytes unchanged.
std::string Lower(std::string_view text);
// Without leading and trailing whitespace (space, \t, \r, \n, \v, \f).
std::string Trim(std::string_view text);

}  // namespace imagegen
