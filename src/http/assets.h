// Files compiled into the binary (see cmake/embed_assets.cmake).
#pragma once

#include <string_view>

namespace imagegen {

std::string_view WebIndexHtml();  // web/index.html
std::string_view OpenApiJson();   // src/http/openapi.json

}  // namespace imagegen
