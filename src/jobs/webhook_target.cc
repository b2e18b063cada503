#include "jobs/webhook_target.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "core/strings.h"

namespace imagegen {
namespace {

using Bytes = std::array<uint8_t, 16>;

Bytes MappedV4(const uint8_t* v4) {
  Bytes out{};
  out[10] = out[11] = 0xff;
  std::memcpy(out.data() + 12, v4, 4);
  return out;
}

bool InNetwork(const Bytes& address, const Cidr& network) {
  int bits = network.prefix_bits;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((address[i] & mask) != (network.address[i] & mask)) return false;
  }
  return true;
}

const std::vector<Cidr>& RefusedNetworks() {
  static const std::vector<Cidr> networks = [] {
    std::vector<Cidr> out;
    for (const char* text :
         {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
          "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
          "240.0.0.0/4", "::/128", "::1/128", "fe80::/10", "fc00::/7", "ff00::/8", "2001::/32"}) {
      out.push_back(ParseCidr(text).value());
    }
    return out;
  }();
  return networks;
}

// The IPv4 address an IPv6 one carries (NAT64, 6to4), as mapped; else the address itself.
Bytes EmbeddedV4(const Bytes& address) {
  static const Cidr kNat64 = ParseCidr("64:ff9b::/96").value();
  static const Cidr kSixToFour = ParseCidr("2002::/16").value();
  if (InNetwork(address, kNat64)) return MappedV4(address.data() + 12);
  if (InNetwork(address, kSixToFour)) return MappedV4(address.data() + 2);
  return address;
}

Error Refuse(const std::string& field, const std::string& message) {
  return Error::Invalid(field, message);
}

struct UrlParts {
  std::string scheme, host, port;
};

Result<UrlParts> SplitUrl(const std::string& url, const std::string& field) {
  if (url.size() > 2048) return Refuse(field, field + " must be at most 2048 characters");
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f) {
      return Refuse(field, field + " must be an encoded URL (no spaces or control characters)");
    }
  }
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return Refuse(field, field + " must be an absolute http:// or https:// URL");
  }
  UrlParts parts;
  parts.scheme = Lower(url.substr(0, scheme_end));
  if (parts.scheme != "http" && parts.scheme != "https") {
    return Refuse(field, field + " must use http or https (got " + parts.scheme + ")");
  }
  std::string rest = url.substr(scheme_end + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) {
    return Refuse(field, field + " must not carry user info (user@host)");
  }
  std::string host = authority;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string::npos) return Refuse(field, field + " has an unclosed [IPv6] host");
    parts.host = host.substr(1, close - 1);
    host = host.substr(close + 1);
    if (!host.empty() && host.front() != ':') return Refuse(field, field + " has a bad host");
    if (!host.empty()) parts.port = host.substr(1);
  } else {
    size_t colon = host.find(':');
    parts.host = host.substr(0, colon);
    if (colon != std::string::npos) parts.port = host.substr(colon + 1);
  }
  parts.host = Lower(parts.host);
  if (parts.host.empty()) return Refuse(field, field + " has no host");
  if (!parts.port.empty()) {
    int port = 0;
    auto [ptr, ec] =
        std::from_chars(parts.port.data(), parts.port.data() + parts.port.size(), port);
    if (ec != std::errc() || ptr != parts.port.data() + parts.port.size() || port < 1 ||
        port > 65535) {
      return Refuse(field, field + " has a bad port \"" + parts.port + "\"");
    }
  }
  return parts;
}

Result<std::vector<Bytes>> Resolve(const std::string& host, const std::string& field) {
  Bytes literal{};
  if (ParseIpAddress(host, &literal)) return std::vector<Bytes>{literal};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    return Refuse(field, field + " host \"" + host + "\" does not resolve: " + gai_strerror(rc));
  }
  std::vector<Bytes> out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      out.push_back(MappedV4(reinterpret_cast<const uint8_t*>(&in->sin_addr)));
    } else if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      Bytes b{};
      std::memcpy(b.data(), &in6->sin6_addr, 16);
      out.push_back(b);
    }
  }
  ::freeaddrinfo(found);
  if (out.empty()) return Refuse(field, field + " host \"" + host + "\" has no IP address");
  return out;
}

}  // namespace

bool ParseIpAddress(const std::string& text, Bytes* out) {
  uint8_t v4[4];
  if (::inet_pton(AF_INET, text.c_str(), v4) == 1) {
    *out = MappedV4(v4);
    return true;
  }
  return ::inet_pton(AF_INET6, text.c_str(), out->data()) == 1;
}

std::string FormatIpAddress(const Bytes& address) {
  static const Cidr kMapped = ParseCidr("::ffff:0:0/96").value();
  char text[INET6_ADDRSTRLEN] = {};
  if (InNetwork(address, kMapped)) {
    ::inet_ntop(AF_INET, address.data() + 12, text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET6, address.data(), text, sizeof(text));
  }
  return text;
}

Result<Cidr> ParseCidr(const std::string& text) {
  std::string trimmed = Trim(text);
  size_t slash = trimmed.find('/');
  std::string address = trimmed.substr(0, slash);
  Cidr cidr;
  bool v4 = address.find(':') == std::string::npos;
  if (!ParseIpAddress(address, &cidr.address)) {
    return Error::Invalid("cidr", "\"" + text + "\" is not an IP address or CIDR");
  }
  int max_bits = v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string::npos) {
    std::string digits = trimmed.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || bits < 0 || bits > max_bits) {
      return Error::Invalid("cidr", "\"" + text + "\" has a bad prefix length");
    }
  }
  cidr.prefix_bits = v4 ? bits + 96 : bits;
  return cidr;
}

Result<WebhookAddressPolicy> WebhookAddressPolicy::Parse(const std::string& list,
                                                         const std::string& field) {
  std::vector<Cidr> allowed;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string item = Trim(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (!item.empty()) {
      auto cidr = ParseCidr(item);
      if (!cidr.ok()) return Error::Invalid(field, field + ": " + cidr.error().message);
      allowed.push_back(cidr.value());
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return WebhookAddressPolicy(std::move(allowed));
}

bool WebhookAddressPolicy::Allows(const Bytes& address) const {
  for (const auto& network : allowed_) {
    if (InNetwork(address, network)) return true;
  }
  Bytes v4 = EmbeddedV4(address);
  for (const auto& network : RefusedNetworks()) {
    if (InNetwork(address, network) || InNetwork(v4, network)) return false;
  }
  return true;
}

Status CheckWebhookUrlSyntax(const std::string& url, const std::string& field) {
  auto parts = SplitUrl(url, field);
  if (!parts.ok()) return parts.error();
  return Status::Ok();
}

Result<WebhookTarget> ResolveWebhookTarget(const std::string& url,
                                           const WebhookAddressPolicy& policy,
                                           const std::string& field) {
  auto parts = SplitUrl(url, field);
  if (!parts.ok()) return parts.error();
  auto addresses = Resolve(parts->host, field);
  if (!addresses.ok()) return addresses.error();
  for (const auto& address : addresses.value()) {
    if (!policy.Allows(address)) {
      return Refuse(field, field + " host \"" + parts->host + "\" resolves to " +
                               FormatIpAddress(address) +
                               ", a loopback, private, link-local or reserved address; the "
                               "operator may allow it with --webhook-allow");
    }
  }
  return WebhookTarget{url, parts->host, FormatIpAddress(addresses->front())};
}

}  // namespace imagegen
