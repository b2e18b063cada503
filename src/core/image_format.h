// The output formats a request may ask for, and their names, media types and key extensions.
// In core (not image/) because the request and its validation table name them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace imagegen {

enum class ImageFormat { kPng, kJpeg, kWebp };

// "png", "jpeg", "webp": the names requests use and responses report.
std::string_view ImageFormatName(ImageFormat format);
// Accepts the names above and "jpg"; nullopt for anything else.
std::optional<ImageFormat> ImageFormatFromName(std::string_view name);
std::string_view ImageMediaType(ImageFormat format);  // "image/png", "image/jpeg", "image/webp"
std::string_view ImageExtension(ImageFormat format);  // ".png", ".jpg", ".webp"
// Whether `key` ends in one of the extensions above (what GET /images lists).
bool HasImageExtension(std::string_view key);
// Whether the format can carry an alpha channel (PNG and WebP can, JPEG cannot).
bool FormatHasAlpha(ImageFormat format);
// Whether `quality` changes the encoding (JPEG and WebP; PNG is lossless whatever it says).
bool FormatIsLossy(ImageFormat format);

// What the caller asked for the background. kAuto: whatever the model makes (opaque for every
// model imagegen has today); kTransparent needs a model that makes alpha and a format that keeps
// it.
enum class Background { kAuto, kOpaque, kTransparent };
std::string_view BackgroundName(Background background);
std::optional<Background> BackgroundFromName(std::string_view name);

}  // namespace imagegen
