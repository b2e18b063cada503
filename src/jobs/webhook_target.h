// Where a webhook may be sent: the SSRF guard. A job's webhook URL is checked when the job is
// submitted (a refusal is a 400 before anything is queued) and again before every delivery,
// because DNS may answer differently later (rebinding); the delivery then connects only to the
// address it checked (aws::HttpRequest::pinned_address).
//
// Refused unless the operator allows them (--webhook-allow / IMAGEGEN_WEBHOOK_ALLOW, CIDRs):
//   IPv4  0/8 "this network", 10/8, 172.16/12, 192.168/16 (RFC 1918), 100.64/10 (CGNAT),
//         127/8 (loopback), 169.254/16 (link-local, incl. the cloud metadata 169.254.169.254),
//         192.0.0/24, 198.18/15 (benchmarking), 224/4 (multicast), 240/4 (reserved, broadcast)
//   IPv6  ::/128, ::1/128, fe80::/10 (link-local), fc00::/7 (ULA), ff00::/8 (multicast),
//         2001::/32 (Teredo: hides an IPv4 address), and the IPv4 inside ::ffff:0:0/96
//         (mapped), 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) is checked as IPv4.
// A host that resolves to several addresses is refused if any of them is refused.
// Only http and https; no user info in the URL; at most 2048 characters.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen {

// An IPv6 network; IPv4 ones are held as IPv4-mapped (::ffff:a.b.c.d, prefix + 96).
struct Cidr {
  std::array<uint8_t, 16> address{};
  int prefix_bits = 0;
};

// "10.0.0.0/8", "127.0.0.1" (/32), "fd00::/8", "::1" (/128).
Result<Cidr> ParseCidr(const std::string& text);
// The 16 bytes of an IPv4 or IPv6 literal (IPv4 as mapped); false if it is neither.
bool ParseIpAddress(const std::string& text, std::array<uint8_t, 16>* out);
std::string FormatIpAddress(const std::array<uint8_t, 16>& address);

class WebhookAddressPolicy {
 public:
  WebhookAddressPolicy() = default;
  explicit WebhookAddressPolicy(std::vector<Cidr> allowed) : allowed_(std::move(allowed)) {}
  // A comma-separated list of CIDRs (the flag's value); kInvalidRequest naming `field`.
  static Result<WebhookAddressPolicy> Parse(const std::string& list, const std::string& field);

  // True for a public address, or one inside an operator-allowed network.
  bool Allows(const std::array<uint8_t, 16>& address) const;

 private:
  std::vector<Cidr> allowed_;
};

// A checked webhook URL and the address to connect to.
struct WebhookTarget {
  std::string url;      // as given
  std::string host;     // without brackets
  std::string address;  // the checked address to connect to (a literal, no brackets)
};

// Syntax only (scheme, host, port, no user info, no spaces): kInvalidRequest, field `field`.
Status CheckWebhookUrlSyntax(const std::string& url, const std::string& field);

// Parses `url`, resolves its host (getaddrinfo) and checks every address against `policy`.
// kInvalidRequest (field `field`) for a bad URL, a host that does not resolve or a refused
// address; the message names the address and how to allow it.
Result<WebhookTarget> ResolveWebhookTarget(const std::string& url,
                                           const WebhookAddressPolicy& policy,
                                           const std::string& field);

}  // namespace imagegen
