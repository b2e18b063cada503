#include "aws/xml.h"

#include <cctype>
#include <cstdint>

#include "core/strings.h"

namespace imagegen::aws {

const XmlNode* XmlNode::Child(std::string_view child_name) const {
  for (const auto& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::vector<const XmlNode*> XmlNode::Children(std::string_view child_name) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children) {
    if (c.name == child_name) out.push_back(&c);
  }
  return out;
}

std::string XmlNode::ChildText(std::string_view child_name) const {
  const XmlNode* c = Child(child_name);
  return c ? c->text : std::string();
}

const XmlNode* XmlNode::Find(std::string_view descendant_name) const {
  for (const auto& c : children) {
    if (c.name == descendant_name) return &c;
    if (const XmlNode* found = c.Find(descendant_name)) return found;
  }
  return nullptr;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<XmlNode> ParseDocument() {
    SkipMisc();
    if (pos_ >= s_.size() || s_[pos_] != '<') return Fail("no root element");
    XmlNode root;
    if (!ParseElement(&root, 0)) return Fail(error_);
    return root;
  }

 private:
  imagegen::Error Fail(const std::string& why) {
    return imagegen::Error::Make(ErrorCode::kUpstreamUnavailable,
                                 "malformed XML at byte " + std::to_string(pos_) + ": " + why);
  }

  bool StartsWith(std::string_view prefix) const { return s_.substr(pos_).starts_with(prefix); }

  bool SkipPast(std::string_view terminator) {
    size_t end = s_.find(terminator, pos_);
    if (end == std::string_view::npos) return false;
    pos_ = end + terminator.size();
    return true;
  }

  // Whitespace, <?...?>, <!--...-->, <!DOCTYPE ...> between elements.
  void SkipMisc() {
    while (pos_ < s_.size()) {
      if (std::isspace(static_cast<unsigned char>(s_[pos_]))) {
        ++pos_;
      } else if (StartsWith("<?")) {
        if (!SkipPast("?>")) pos_ = s_.size();
      } else if (StartsWith("<!--")) {
        if (!SkipPast("-->")) pos_ = s_.size();
      } else if (StartsWith("<!DOCTYPE")) {
        if (!SkipPast(">")) pos_ = s_.size();
      } else {
        break;
      }
    }
  }

  bool DecodeText(std::string_view raw, std::string* out) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out->push_back(raw[i]);
        continue;
      }
      size_t semi = raw.find(';', i);
      if (semi == std::string_view::npos) return SetError("unterminated entity");
      std::string_view ent = raw.substr(i + 1, semi - i - 1);
      if (ent == "amp") {
        out->push_back('&');
      } else if (ent == "lt") {
        out->push_back('<');
      } else if (ent == "gt") {
        out->push_back('>');
      } else if (ent == "quot") {
        out->push_back('"');
      } else if (ent == "apos") {
        out->push_back('\'');
      } else if (ent.size() > 1 && ent[0] == '#') {
        unsigned long cp = 0;
        bool hex = ent[1] == 'x' || ent[1] == 'X';
        std::string digits(ent.substr(hex ? 2 : 1));
        if (digits.empty()) return SetError("empty character reference");
        for (char c : digits) {
          int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : hex && std::isxdigit(static_cast<unsigned char>(c))
                      ? (std::tolower(static_cast<unsigned char>(c)) - 'a' + 10)
                      : -1;
          if (v < 0) return SetError("bad character reference");
          cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(v);
          if (cp > 0x10FFFF) return SetError("character reference out of range");
        }
        AppendCodePoint(static_cast<uint32_t>(cp), out);
      } else {
        return SetError("unknown entity &" + std::string(ent) + ";");
      }
      i = semi;
    }
    return true;
  }

  bool SetError(const std::string& why) {
    error_ = why;
    return false;
  }

  bool ParseName(std::string* name) {
    size_t start = pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) &&
           s_[pos_] != '>' && s_[pos_] != '/' && s_[pos_] != '=') {
      ++pos_;
    }
    if (pos_ == start) return SetError("empty element name");
    *name = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  // At '<' of a start tag.
  bool ParseElement(XmlNode* node, int depth) {
    if (depth > kMaxDepth) return SetError("nesting too deep");
    ++pos_;
    if (!ParseName(&node->name)) return false;
    // Attributes: skipped, but quoted values may contain '>' so honour quotes.
    while (pos_ < s_.size() && s_[pos_] != '>' && !StartsWith("/>")) {
      char c = s_[pos_];
      if (c == '"' || c == '\'') {
        size_t end = s_.find(c, pos_ + 1);
        if (end == std::string_view::npos) return SetError("unterminated attribute");
        pos_ = end + 1;
      } else {
        ++pos_;
      }
    }
    if (pos_ >= s_.size()) return SetError("unterminated start tag");
    if (StartsWith("/>")) {
      pos_ += 2;
      return true;
    }
    ++pos_;  // '>'
    while (true) {
      size_t lt = s_.find('<', pos_);
      if (lt == std::string_view::npos) return SetError("missing </" + node->name + ">");
      if (!DecodeText(s_.substr(pos_, lt - pos_), &node->text)) return false;
      pos_ = lt;
      if (StartsWith("</")) {
        pos_ += 2;
        std::string closing;
        if (!ParseName(&closing)) return false;
        if (closing != node->name)
          return SetError("</" + closing + "> closes <" + node->name + ">");
        while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
        if (pos_ >= s_.size() || s_[pos_] != '>') return SetError("bad end tag");
        ++pos_;
        return true;
      }
      if (StartsWith("<![CDATA[")) {
        size_t end = s_.find("]]>", pos_);
        if (end == std::string_view::npos) return SetError("unterminated CDATA");
        node->text.append(s_.substr(pos_ + 9, end - pos_ - 9));
        pos_ = end + 3;
      } else if (StartsWith("<!--")) {
        if (!SkipPast("-->")) return SetError("unterminated comment");
      } else if (StartsWith("<?")) {
        if (!SkipPast("?>")) return SetError("unterminated processing instruction");
      } else {
        node->children.emplace_back();
        if (!ParseElement(&node->children.back(), depth + 1)) return false;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

Result<XmlNode> ParseXml(std::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace imagegen::aws
