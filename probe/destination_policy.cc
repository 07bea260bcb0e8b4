#include "probe/destination_policy.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"

namespace fanprobe {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0,    0,
                                                   0, 0, 0, 0, 0xff, 0xff};

IpAddress FromV4(const uint8_t v4[4]) {
  IpAddress address;
  std::memcpy(address.bytes.data(), kMappedPrefix.data(), 12);
  std::memcpy(address.bytes.data() + 12, v4, 4);
  address.is_v4 = true;
  return address;
}

bool HasPrefix(const IpAddress& a, std::initializer_list<uint8_t> prefix) {
  size_t i = 0;
  for (uint8_t b : prefix) {
    if (a.bytes[i++] != b) return false;
  }
  return true;
}

AddressClass ClassifyV4(const uint8_t v[4]) {
  if (v[0] == 0) return AddressClass::kUnspecified;
  if (v[0] == 100 && v[1] == 100 && v[2] == 100 && v[3] == 200) {
    return AddressClass::kCloudMetadata;  // Alibaba Cloud
  }
  if (v[0] == 127) return AddressClass::kLoopback;
  if (v[0] == 10 || (v[0] == 172 && (v[1] & 0xf0) == 16) ||
      (v[0] == 192 && v[1] == 168) || (v[0] == 100 && (v[1] & 0xc0) == 64)) {
    return AddressClass::kPrivate;
  }
  if (v[0] == 169 && v[1] == 254) return AddressClass::kLinkLocal;
  if ((v[0] & 0xf0) == 224) return AddressClass::kMulticast;
  if (v[0] == 255 && v[1] == 255 && v[2] == 255 && v[3] == 255) {
    return AddressClass::kBroadcast;
  }
  if ((v[0] & 0xf0) == 240) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

AddressClass ClassifyV6Native(const IpAddress& a) {
  static constexpr std::array<uint8_t, 16> kZero{};
  std::array<uint8_t, 16> loopback{};
  loopback[15] = 1;
  if (a.bytes == kZero) return AddressClass::kUnspecified;
  static constexpr std::array<uint8_t, 16> kAwsMetadata = {
      0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  if (a.bytes == kAwsMetadata) return AddressClass::kCloudMetadata;
  if (a.bytes == loopback) return AddressClass::kLoopback;
  if (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80) {
    return AddressClass::kLinkLocal;
  }
  if (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0xc0) {
    return AddressClass::kPrivate;  // fec0::/10, deprecated site-local
  }
  if ((a.bytes[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;
  if (a.bytes[0] == 0xff) return AddressClass::kMulticast;
  return AddressClass::kPublic;
}

// Every IPv4 address `a` embeds (IPv4 itself, mapped, compatible, NAT64 in
// any RFC 6052 layout, 6to4, Teredo server and client), as mapped addresses.
std::vector<IpAddress> EmbeddedV4(const IpAddress& a) {
  std::vector<IpAddress> out;
  const uint8_t* b = a.bytes.data();
  auto add = [&out](std::initializer_list<uint8_t> v4) {
    uint8_t raw[4];
    std::copy(v4.begin(), v4.end(), raw);
    out.push_back(FromV4(raw));
  };
  if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), b)) {
    add({b[12], b[13], b[14], b[15]});
    return out;
  }
  if (std::all_of(b, b + 12, [](uint8_t x) { return x == 0; }) &&
      !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1)) {
    add({b[12], b[13], b[14], b[15]});  // ::a.b.c.d, IPv4-compatible
  }
  if (HasPrefix(a, {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) {
    add({b[12], b[13], b[14], b[15]});  // 64:ff9b::/96
  }
  if (HasPrefix(a, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01})) {
    // 64:ff9b:1::/48 is for local NAT64 with any RFC 6052 prefix length,
    // so every layout is checked (byte 8 is the reserved "u" octet).  A
    // layout that reads 0.0.0.0/8 is not the one in use (no NAT64 maps to
    // it), so it must not hide the real one.
    const std::array<uint8_t, 4> layouts[] = {
        {b[6], b[7], b[9], b[10]},     // /48
        {b[7], b[9], b[10], b[11]},    // /56
        {b[9], b[10], b[11], b[12]},   // /64
        {b[12], b[13], b[14], b[15]},  // /96
    };
    for (const std::array<uint8_t, 4>& v4 : layouts) {
      if (v4[0] != 0) out.push_back(FromV4(v4.data()));
    }
  }
  if (HasPrefix(a, {0x20, 0x02})) add({b[2], b[3], b[4], b[5]});  // 6to4
  if (HasPrefix(a, {0x20, 0x01, 0x00, 0x00})) {                   // Teredo
    add({b[4], b[5], b[6], b[7]});                                // server
    add({static_cast<uint8_t>(b[12] ^ 0xff), static_cast<uint8_t>(b[13] ^ 0xff),
         static_cast<uint8_t>(b[14] ^ 0xff),
         static_cast<uint8_t>(b[15] ^ 0xff)});  // client, obfuscated
  }
  return out;
}

// How bad a class is, to pick the worst of an address and what it embeds.
int Severity(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic:
      return 0;
    case AddressClass::kPrivate:
      return 1;
    case AddressClass::kLoopback:
      return 2;
    default:
      return 3;  // always denied
  }
}

}  // namespace

absl::StatusOr<IpAddress> IpAddress::Parse(absl::string_view text) {
  std::string s(text);
  uint8_t v4[4];
  if (inet_pton(AF_INET, s.c_str(), v4) == 1) return FromV4(v4);
  IpAddress address;
  if (inet_pton(AF_INET6, s.c_str(), address.bytes.data()) == 1) {
    address.is_v4 = std::equal(kMappedPrefix.begin(), kMappedPrefix.end(),
                               address.bytes.begin());
    return address;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not an IPv4 or IPv6 address"));
}

bool IpAddress::FromSockaddr(const sockaddr* address, IpAddress* out) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    *out = FromV4(reinterpret_cast<const uint8_t*>(&in->sin_addr));
    return true;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    std::memcpy(out->bytes.data(), &in6->sin6_addr, 16);
    out->is_v4 = std::equal(kMappedPrefix.begin(), kMappedPrefix.end(),
                            out->bytes.begin());
    return true;
  }
  return false;
}

std::string IpAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (is_v4) {
    inet_ntop(AF_INET, bytes.data() + 12, buffer, sizeof(buffer));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buffer, sizeof(buffer));
  }
  return buffer;
}

absl::StatusOr<Cidr> Cidr::Parse(absl::string_view text) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits('/', 1));
  absl::StatusOr<IpAddress> network = IpAddress::Parse(parts.first);
  if (!network.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a CIDR: ", network.status().message()));
  }
  const int max_length = network->is_v4 ? 32 : 128;
  int length = max_length;
  if (!parts.second.empty() || absl::StrContains(text, '/')) {
    if (!absl::SimpleAtoi(parts.second, &length) || length < 0 ||
        length > max_length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", text, "\" has no prefix length in 0-", max_length));
    }
  }
  Cidr cidr;
  cidr.network = *network;
  cidr.prefix_length = network->is_v4 ? 96 + length : length;
  // Zero the host bits so Contains() compares networks.
  for (int bit = cidr.prefix_length; bit < 128; ++bit) {
    cidr.network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  }
  return cidr;
}

bool Cidr::Contains(const IpAddress& address) const {
  for (int bit = 0; bit < prefix_length; ++bit) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((address.bytes[bit / 8] & mask) != (network.bytes[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

std::string Cidr::ToString() const {
  return absl::StrCat(network.ToString(), "/",
                      network.is_v4 ? prefix_length - 96 : prefix_length);
}

absl::string_view AddressClassName(AddressClass address_class) {
  switch (address_class) {
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kLinkLocal:
      return "link-local";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kReserved:
      return "reserved";
    case AddressClass::kCloudMetadata:
      return "cloud metadata";
  }
  return "unknown";
}

AddressClass Classify(const IpAddress& address) {
  if (address.is_v4) return ClassifyV4(address.bytes.data() + 12);
  AddressClass worst = ClassifyV6Native(address);
  for (const IpAddress& v4 : EmbeddedV4(address)) {
    AddressClass c = ClassifyV4(v4.bytes.data() + 12);
    if (Severity(c) > Severity(worst)) worst = c;
  }
  return worst;
}

absl::Status DestinationPolicy::Check(const IpAddress& address) const {
  std::vector<IpAddress> views = {address};
  if (!address.is_v4) {
    std::vector<IpAddress> embedded = EmbeddedV4(address);
    views.insert(views.end(), embedded.begin(), embedded.end());
  }
  for (const Cidr& cidr : deny) {
    for (const IpAddress& view : views) {
      if (cidr.Contains(view)) {
        return absl::PermissionDeniedError(absl::StrCat(
            "address ", address.ToString(), " is denied by policy (deny_cidr ",
            cidr.ToString(), ")"));
      }
    }
  }
  for (const Cidr& cidr : allow) {
    for (const IpAddress& view : views) {
      if (cidr.Contains(view)) return absl::OkStatus();
    }
  }
  const AddressClass address_class = Classify(address);
  const bool denied =
      Severity(address_class) >= 3 ||
      (address_class == AddressClass::kLoopback && deny_loopback) ||
      (address_class == AddressClass::kPrivate && deny_private);
  if (!denied) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("address ", address.ToString(), " is denied by policy (",
                   AddressClassName(address_class), ")"));
}

}  // namespace fanprobe
