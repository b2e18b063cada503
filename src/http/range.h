// Single byte ranges (RFC 9110 section 14) on a complete response. Only one range is served:
// a multi-range request is answered whole (200), which the RFC allows, so overlapping ranges
// can never make a response larger than the resource.
#pragma once

#include "http/http_types.h"

namespace imagegen {

// Applies `range` (the Range field) to a 200 response that declared "Accept-Ranges: bytes":
// 206 with Content-Range for one satisfiable range, 416 for an unsatisfiable one, unchanged
// otherwise (no or unparsable Range, several ranges, If-Range not matching the ETag).
void ApplyRange(const std::string& range, const std::string& if_range, HttpResponse* response);

}  // namespace imagegen
