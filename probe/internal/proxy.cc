#include "probe/internal/proxy.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fanprobe::internal {
namespace {

bool IsDomainChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

absl::StatusOr<NoProxyRule> ParseNoProxyRule(absl::string_view entry) {
  entry = absl::StripAsciiWhitespace(entry);
  NoProxyRule rule;
  if (entry == "*") {
    rule.everything = true;
    return rule;
  }
  const auto bad = [entry] {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", entry,
                     "\" is not *, an address, a CIDR block or a domain "
                     "(each with an optional :port)"));
  };
  if (entry.empty()) return absl::InvalidArgumentError("an empty entry");
  if (absl::StrContains(entry, '/')) {
    absl::StatusOr<Cidr> block = Cidr::Parse(entry);
    if (!block.ok()) return bad();
    rule.block = *block;
    return rule;
  }
  // An address or domain, then an optional port: "[v6]:port", "v4:port",
  // "name:port"; a bare IPv6 address has colons of its own.
  absl::string_view host = entry;
  if (absl::StatusOr<Cidr> address = Cidr::Parse(host); address.ok()) {
    rule.block = *address;  // a bare IPv6 address
    return rule;
  }
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return bad();
    absl::string_view after = host.substr(close + 1);
    host = host.substr(0, close);
    if (!after.empty() && (!absl::ConsumePrefix(&after, ":") ||
                           !absl::SimpleAtoi(after, &rule.port))) {
      return bad();
    }
  } else if (const size_t colon = host.rfind(':');
             colon != absl::string_view::npos) {
    if (!absl::SimpleAtoi(host.substr(colon + 1), &rule.port)) return bad();
    host = host.substr(0, colon);
  }
  if (rule.port < 0 || rule.port > 65535) return bad();
  if (absl::StatusOr<Cidr> address = Cidr::Parse(host); address.ok()) {
    rule.block = *address;
    return rule;
  }
  if (absl::ConsumePrefix(&host, "*.")) {
    rule.domain = ".";
  }
  if (host.empty() || !std::all_of(host.begin(), host.end(), IsDomainChar)) {
    return bad();
  }
  absl::StrAppend(&rule.domain, absl::AsciiStrToLower(host));
  return rule;
}

bool Bypasses(const std::vector<NoProxyRule>& rules, const ParsedUrl& target) {
  for (const NoProxyRule& rule : rules) {
    if (rule.everything) return true;
    if (rule.port != 0 && rule.port != target.port) continue;
    if (rule.block.has_value()) {
      if (target.address.has_value() && rule.block->Contains(*target.address))
        return true;
      continue;
    }
    if (target.address.has_value()) continue;
    absl::string_view domain = rule.domain;
    if (absl::ConsumePrefix(&domain, ".")) {
      if (absl::EndsWith(target.host, rule.domain)) return true;
    } else if (target.host == domain ||
               absl::EndsWith(target.host, absl::StrCat(".", domain))) {
      return true;
    }
  }
  return false;
}

}  // namespace fanprobe::internal
