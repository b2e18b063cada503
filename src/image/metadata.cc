#include "image/metadata.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/strings.h"

namespace imagegen {
namespace {

constexpr uint16_t kTagSoftware = 0x0131;
constexpr uint16_t kTagExifIfd = 0x8769;
constexpr uint16_t kTagUserComment = 0x9286;
constexpr uint16_t kTypeAscii = 2, kTypeShort = 3, kTypeLong = 4, kTypeUndefined = 7;
constexpr char kUnicodePrefix[8] = {'U', 'N', 'I', 'C', 'O', 'D', 'E', '\0'};
// No IFD imagegen reads has more entries; a larger count is garbage, not a reason to loop long.
constexpr uint32_t kMaxEntries = 512;

const std::string* Find(const TextChunks& text, const std::string& key) {
  for (const auto& [k, v] : text) {
    if (k == key) return &v;
  }
  return nullptr;
}

// ---- UTF-8 <-> UTF-16 (the EXIF UNICODE charset) ----

// Decodes one code point at s[*i], advancing *i; malformed sequences give U+FFFD.
uint32_t NextCodePoint(const std::string& s, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(*i);
  int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
  if (extra < 0 || *i + static_cast<size_t>(extra) >= s.size() + (extra == 0 ? 1 : 0)) {
    ++*i;
    return 0xFFFD;
  }
  uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    unsigned char next = byte(*i + static_cast<size_t>(k));
    if ((next & 0xC0) != 0x80) {
      ++*i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (next & 0x3F);
  }
  *i += static_cast<size_t>(extra) + 1;
  return cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0xFFFD : cp;
}

void AppendUnit(uint16_t unit, std::string* out) {
  out->push_back(static_cast<char>(unit >> 8));
  out->push_back(static_cast<char>(unit & 0xFF));
}

std::string Utf16BeFromUtf8(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = NextCodePoint(s, &i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      AppendUnit(static_cast<uint16_t>(0xD800 | (cp >> 10)), &out);
      AppendUnit(static_cast<uint16_t>(0xDC00 | (cp & 0x3FF)), &out);
    } else {
      AppendUnit(static_cast<uint16_t>(cp), &out);
    }
  }
  return out;
}

std::string Utf8FromUtf16(const std::string& bytes, bool big_endian) {
  size_t n = bytes.size() / 2;
  auto unit = [&](size_t k) {
    auto hi = static_cast<unsigned char>(bytes[2 * k + (big_endian ? 0 : 1)]);
    auto lo = static_cast<unsigned char>(bytes[2 * k + (big_endian ? 1 : 0)]);
    return static_cast<uint32_t>(hi << 8 | lo);
  };
  size_t k = 0;
  if (n > 0 && (unit(0) == 0xFEFF || unit(0) == 0xFFFE)) {  // a BOM overrides the TIFF order
    big_endian = unit(0) == 0xFEFF ? big_endian : !big_endian;
    k = 1;
  }
  std::string out;
  for (; k < n; ++k) {
    uint32_t u = unit(k);
    if (u >= 0xD800 && u <= 0xDBFF && k + 1 < n && unit(k + 1) >= 0xDC00 && unit(k + 1) <= 0xDFFF) {
      u = 0x10000 + ((u - 0xD800) << 10) + (unit(k + 1) - 0xDC00);
      ++k;
    } else if (u >= 0xD800 && u <= 0xDFFF) {
      u = 0xFFFD;
    }
    AppendCodePoint(u, &out);
  }
  return out;
}

// ---- EXIF writing: big-endian TIFF, IFD0 -> Exif IFD, values after both IFDs ----

struct Entry {
  uint16_t tag;
  uint16_t type;
  uint32_t count;
  std::string value;  // the value's bytes, big-endian
};

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xFFFF));
}
std::string Be32(uint32_t v) {
  std::string s;
  Put32(&s, v);
  return s;
}

// Appends one IFD at the end of `out` whose large values go to `*data_offset` onwards (into
// `data`); `next` is the next-IFD offset (0: none).
void WriteIfd(const std::vector<Entry>& entries, std::string* out, std::string* data,
              uint32_t* data_offset) {
  Put16(out, static_cast<uint16_t>(entries.size()));
  for (const Entry& e : entries) {
    Put16(out, e.tag);
    Put16(out, e.type);
    Put32(out, e.count);
    if (e.value.size() <= 4) {
      std::string inline_value = e.value;
      inline_value.resize(4, '\0');
      out->append(inline_value);
    } else {
      Put32(out, *data_offset);
      data->append(e.value);
      if (e.value.size() % 2 != 0) data->push_back('\0');  // values start on word boundaries
      *data_offset += static_cast<uint32_t>(e.value.size() + e.value.size() % 2);
    }
  }
  Put32(out, 0);
}

uint32_t IfdSize(size_t entries) { return static_cast<uint32_t>(2 + 12 * entries + 4); }

// ---- EXIF reading ----

class TiffReader {
 public:
  explicit TiffReader(const std::string& bytes) : b_(bytes) {}
  bool Header() {
    if (b_.size() < 8) return false;
    if (b_.compare(0, 4, std::string("MM\0*", 4)) == 0) {
      big_ = true;
    } else if (b_.compare(0, 4, std::string("II*\0", 4)) == 0) {
      big_ = false;
    } else {
      return false;
    }
    return true;
  }
  bool big_endian() const { return big_; }
  std::optional<uint32_t> U16(uint64_t at) const {
    if (at + 2 > b_.size()) return std::nullopt;
    uint32_t a = Byte(at), b = Byte(at + 1);
    return big_ ? (a << 8 | b) : (b << 8 | a);
  }
  std::optional<uint32_t> U32(uint64_t at) const {
    auto hi = U16(big_ ? at : at + 2), lo = U16(big_ ? at + 2 : at);
    if (!hi || !lo) return std::nullopt;
    return *hi << 16 | *lo;
  }
  // The bytes of the entry with `tag` in the IFD at `ifd`, when the entry and its value fit.
  std::optional<std::string> Value(uint32_t ifd, uint16_t tag, uint16_t* type) const {
    auto count = U16(ifd);
    if (!count) return std::nullopt;
    for (uint32_t i = 0; i < std::min(*count, kMaxEntries); ++i) {
      uint64_t e = uint64_t{ifd} + 2 + 12 * uint64_t{i};
      auto t = U16(e), ty = U16(e + 2), n = U32(e + 4);
      if (!t || !ty || !n) return std::nullopt;  // the IFD runs past the end
      if (*t != tag) continue;
      uint64_t unit = *ty == kTypeShort ? 2 : *ty == kTypeLong ? 4 : 1;
      uint64_t length = unit * *n;
      uint64_t at = e + 8;
      if (length > 4) {
        auto offset = U32(e + 8);
        if (!offset) return std::nullopt;
        at = *offset;
      }
      if (at + length > b_.size()) return std::nullopt;
      *type = static_cast<uint16_t>(*ty);
      return b_.substr(static_cast<size_t>(at), static_cast<size_t>(length));
    }
    return std::nullopt;
  }

 private:
  uint32_t Byte(uint64_t at) const {
    return static_cast<unsigned char>(b_[static_cast<size_t>(at)]);
  }
  const std::string& b_;
  bool big_ = true;
};

std::string StripNuls(std::string s) {
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::string DecodeUserComment(const std::string& raw, bool big_endian) {
  if (raw.size() < 8) return StripNuls(raw);
  std::string body = raw.substr(8);
  if (raw.compare(0, 8, std::string(kUnicodePrefix, 8)) == 0) {
    return StripNuls(Utf8FromUtf16(body, big_endian));
  }
  return StripNuls(body);  // ASCII, or undefined (taken as UTF-8)
}

// ---- XMP ----

bool IsXmlName(const std::string& key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9') || key[0] == '-' || key[0] == '.') {
    return false;
  }
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// Attribute-value escaping. Newlines and tabs become character references: a parser normalises
// literal ones to spaces, and the A1111 parameters text is multi-line.
std::string EscapeAttribute(const std::string& value) {
  std::string out;
  for (char c : value) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      case '\t':
        out += "&#9;";
        break;
      default:
        // Other control characters are not allowed in XML 1.0 (requests refuse them anyway).
        if (static_cast<unsigned char>(c) >= 0x20) out += c;
    }
  }
  return out;
}

std::string DecodeEntities(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    std::string name = s.substr(i + 1, semi - i - 1);
    std::optional<uint32_t> cp;
    if (name == "amp") cp = '&';
    if (name == "lt") cp = '<';
    if (name == "gt") cp = '>';
    if (name == "quot") cp = '"';
    if (name == "apos") cp = '\'';
    if (name.size() > 1 && name[0] == '#') {
      bool hex = name[1] == 'x' || name[1] == 'X';
      std::string digits = name.substr(hex ? 2 : 1);
      bool ok = !digits.empty() && std::all_of(digits.begin(), digits.end(), [&](char c) {
        return hex ? std::isxdigit(static_cast<unsigned char>(c)) != 0 : (c >= '0' && c <= '9');
      });
      if (ok) {
        uint32_t v = static_cast<uint32_t>(std::stoul(digits, nullptr, hex ? 16 : 10));
        cp = v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ? 0xFFFD : v;
      }
    }
    if (!cp) {
      out += s[i];
      continue;
    }
    AppendCodePoint(*cp, &out);
    i = semi;
  }
  return out;
}

}  // namespace

std::string BuildExif(const TextChunks& text) {
  const std::string* parameters = Find(text, "parameters");
  const std::string* software = Find(text, "Software");
  if (parameters == nullptr && software == nullptr) return "";
  std::vector<Entry> ifd0, exif;
  if (software != nullptr) {
    std::string ascii = *software + '\0';
    ifd0.push_back({kTagSoftware, kTypeAscii, static_cast<uint32_t>(ascii.size()), ascii});
  }
  if (parameters != nullptr) {
    std::string comment = std::string(kUnicodePrefix, 8) + Utf16BeFromUtf8(*parameters);
    exif.push_back(
        {kTagUserComment, kTypeUndefined, static_cast<uint32_t>(comment.size()), comment});
  }
  uint32_t exif_offset = 8 + IfdSize(ifd0.size() + (exif.empty() ? 0 : 1));
  if (!exif.empty()) ifd0.push_back({kTagExifIfd, kTypeLong, 1, Be32(exif_offset)});
  uint32_t data_offset = exif_offset + (exif.empty() ? 0 : IfdSize(exif.size()));
  std::string out("MM\0*", 4), data;
  Put32(&out, 8);
  WriteIfd(ifd0, &out, &data, &data_offset);
  if (!exif.empty()) WriteIfd(exif, &out, &data, &data_offset);
  return out + data;
}

bool ParseExif(const std::string& tiff, TextChunks* text) {
  TiffReader reader(tiff);
  if (!reader.Header()) return false;
  auto ifd0 = reader.U32(4);
  if (!ifd0) return true;
  uint16_t type = 0;
  TextChunks found;
  if (auto software = reader.Value(*ifd0, kTagSoftware, &type); software && type == kTypeAscii) {
    found.emplace_back("Software", StripNuls(*software));
  }
  auto pointer = reader.Value(*ifd0, kTagExifIfd, &type);
  if (pointer && type == kTypeLong && pointer->size() == 4) {
    uint32_t exif_ifd = 0;  // the four bytes of the LONG, in the file's byte order
    for (int k = 0; k < 4; ++k) {
      size_t at = static_cast<size_t>(reader.big_endian() ? k : 3 - k);
      exif_ifd = exif_ifd << 8 | static_cast<unsigned char>((*pointer)[at]);
    }
    if (auto comment = reader.Value(exif_ifd, kTagUserComment, &type); comment) {
      found.emplace_back("parameters", DecodeUserComment(*comment, reader.big_endian()));
    }
  }
  MergeText(found, text);
  return true;
}

Result<std::string> BuildXmp(const TextChunks& text) {
  std::string attributes;
  for (const auto& [key, value] : text) {
    if (!IsXmlName(key)) {
      return Error::Make(ErrorCode::kInternal, "XMP: \"" + key + "\" is not an XML name");
    }
    attributes += "\n   imagegen:" + key + "=\"" + EscapeAttribute(value) + "\"";
  }
  return "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
         "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
         " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
         "  <rdf:Description rdf:about=\"\"\n   xmlns:imagegen=\"" +
         std::string(kXmpNamespace) + "\"" + attributes +
         "/>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"r\"?>";
}

void ParseXmp(const std::string& xmp, TextChunks* text) {
  static const std::string kPrefix = "imagegen:";
  TextChunks found;
  size_t at = 0;
  while ((at = xmp.find(kPrefix, at)) != std::string::npos) {
    size_t name_start = at + kPrefix.size();
    size_t name_end = name_start;
    while (name_end < xmp.size() && IsXmlName(std::string(1, xmp[name_end]))) ++name_end;
    at = name_end;
    bool preceded = name_start > kPrefix.size() &&
                    std::isspace(static_cast<unsigned char>(xmp[name_start - kPrefix.size() - 1]));
    if (!preceded || name_end == name_start || name_end + 2 > xmp.size() || xmp[name_end] != '=') {
      continue;
    }
    char quote = xmp[name_end + 1];
    if (quote != '"' && quote != '\'') continue;
    size_t close = xmp.find(quote, name_end + 2);
    if (close == std::string::npos) break;
    found.emplace_back(xmp.substr(name_start, name_end - name_start),
                       DecodeEntities(xmp.substr(name_end + 2, close - name_end - 2)));
    at = close + 1;
  }
  MergeText(found, text);
}

void MergeText(const TextChunks& more, TextChunks* text) {
  for (const auto& pair : more) {
    if (Find(*text, pair.first) == nullptr) text->push_back(pair);
  }
}

}  // namespace imagegen
