// Provenance for the formats without text chunks (JPEG, WebP), written the way A1111 does so
// the tools that read its images read ours: the A1111 "parameters" text in EXIF UserComment
// (charset UNICODE, UTF-16 in the TIFF byte order) and "Software" in IFD0; and every pair in an
// XMP packet as attributes of the imagegen namespace (kXmpNamespace), which inspect reads back.
//
// The readers take hostile bytes: every offset and length is checked against the buffer, an
// entry that does not fit is skipped, and nothing is read outside the input.
#pragma once

#include <string>

#include "core/error.h"
#include "image/image.h"

namespace imagegen {

inline constexpr const char* kXmpNamespace = "https://imagegen.dev/ns/provenance/1.0/";

// A big-endian TIFF structure (what follows "Exif\0\0" in a JPEG APP1, or a WebP EXIF chunk)
// holding text's "parameters" as UserComment and "Software" as Software. Empty when text has
// neither.
std::string BuildExif(const TextChunks& text);
// Appends "parameters" (UserComment) and "Software" when present and in bounds. Never fails:
// malformed parts are skipped. Returns whether the TIFF header itself was recognised.
bool ParseExif(const std::string& tiff, TextChunks* text);

// An XMP packet (UTF-8) with every pair as imagegen:KEY="VALUE". Keys must be XML names
// (letters, digits, '_', '-', '.'; not starting with a digit): others are an internal error.
Result<std::string> BuildXmp(const TextChunks& text);
// Appends every imagegen:KEY="VALUE" attribute found, entities decoded.
void ParseXmp(const std::string& xmp, TextChunks* text);

// Adds the pairs of `more` whose key `text` does not have yet (EXIF and XMP both carry
// "parameters"; one copy is enough).
void MergeText(const TextChunks& more, TextChunks* text);

}  // namespace imagegen
