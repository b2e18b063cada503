// A small XML reader for the answers of AWS's XML protocols (S3 listings and errors). It keeps
// elements and their text, decodes the five named entities and numeric character references,
// and skips the declaration, comments, processing instructions, DOCTYPE and attributes.
// Namespaces are not resolved: "x:Key" stays "x:Key".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace imagegen::aws {

struct XmlNode {
  std::string name;
  std::string text;  // concatenated character data of this element (not of its children)
  std::vector<XmlNode> children;

  const XmlNode* Child(std::string_view child_name) const;  // first direct child, or null
  std::vector<const XmlNode*> Children(std::string_view child_name) const;
  std::string ChildText(std::string_view child_name) const;     // "" when absent
  const XmlNode* Find(std::string_view descendant_name) const;  // depth-first, or null
};

// The document's root element. kUpstreamUnavailable for malformed input (a garbled answer from
// a service is the service's failure, not the caller's).
Result<XmlNode> ParseXml(std::string_view text);

}  // namespace imagegen::aws
