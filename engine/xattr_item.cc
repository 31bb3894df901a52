#include "engine/xattr_item.h"

#include <cassert>
#include <cstring>

#include "engine/crc32c.h"

namespace pagefs {
namespace {

bool fail(const char** why, const char* reason) {
  *why = reason;
  return false;
}

// The XattrPages record of `record`, checked against the format and `limits`.
bool decode_pages(std::string_view record, const ItemLimits& limits, XattrItem* out,
                  const char** why) {
  XattrPages p;
  if (record.size() < sizeof p) return fail(why, "xattr page record too short");
  std::memcpy(&p, record.data(), sizeof p);
  if (p.reserved != 0) return fail(why, "xattr page record reserved field not zero");
  if (p.value_bytes == 0 || p.value_bytes > kMaxXattrValue) {
    return fail(why, "xattr value in pages of an impossible length");
  }
  if (p.pages != xattr_value_pages(p.value_bytes, limits.page_size)) {
    return fail(why, "xattr page count disagrees with the value's length");
  }
  if (record.size() != xattr_pages_size(p.pages)) {
    return fail(why, "xattr page record of the wrong size");
  }
  out->value_bytes = p.value_bytes;
  out->pages.resize(p.pages);
  std::memcpy(out->pages.data(), record.data() + sizeof p, sizeof(XattrPage) * p.pages);
  for (const XattrPage& page : out->pages) {
    if (page.phys < limits.data_start || page.phys >= limits.page_count) {
      return fail(why, "xattr value page outside the data region");
    }
  }
  return true;
}

}  // namespace

bool XattrItem::decode(std::span<const std::byte> v, const ItemLimits& limits, XattrItem* out,
                       const char** why) {
  XattrValue x;
  if (v.size() < sizeof x) return fail(why, "xattr item too short");
  std::memcpy(&x, v.data(), sizeof x);
  if (x.name_len == 0) return fail(why, "xattr with an empty name");
  if (v.size() != sizeof x + size_t(x.name_len) + x.value_len) {
    return fail(why, "xattr sizes disagree with the item's size");
  }
  if ((x.flags & ~(kXattrInPages | kXattrCrc)) != 0) return fail(why, "xattr with unknown flags");
  out->has_crc = (x.flags & kXattrCrc) != 0;
  if (out->has_crc != limits.xattr_crc) {
    return fail(why, limits.xattr_crc ? "xattr without the checksum of its value"
                                      : "xattr checksum on a filesystem without xattr_crc");
  }
  const char* base = reinterpret_cast<const char*>(v.data()) + sizeof x;
  out->name = std::string_view(base, x.name_len);
  std::string_view rest(base + x.name_len, x.value_len);
  out->value_crc = 0;
  if (out->has_crc) {
    if (rest.size() < kXattrCrcBytes) return fail(why, "xattr too short for its checksum");
    std::memcpy(&out->value_crc, rest.data(), kXattrCrcBytes);
    rest.remove_prefix(kXattrCrcBytes);
  }
  out->in_pages = (x.flags & kXattrInPages) != 0;
  out->pages.clear();
  if (!out->in_pages) {
    out->inline_value = rest;
    out->value_bytes = uint32_t(rest.size());
    return true;
  }
  out->inline_value = {};
  return decode_pages(rest, limits, out, why);
}

bool XattrItem::matches_crc(std::string_view value) const {
  return !has_crc || crc32c(value.data(), value.size()) == value_crc;
}

std::string XattrItem::encode_inline(std::string_view name, std::string_view value, bool crc) {
  const size_t extra = crc ? kXattrCrcBytes : 0;
  assert(!name.empty() && name.size() <= kNameMax && value.size() + extra <= UINT16_MAX);
  std::string v(sizeof(XattrValue) + name.size() + extra + value.size(), '\0');
  XattrValue x{uint8_t(name.size()), uint8_t(crc ? kXattrCrc : 0), uint16_t(extra + value.size())};
  char* at = v.data();
  std::memcpy(at, &x, sizeof x);
  std::memcpy(at += sizeof x, name.data(), name.size());
  at += name.size();
  if (crc) {
    const uint32_t value_crc = crc32c(value.data(), value.size());
    std::memcpy(at, &value_crc, kXattrCrcBytes);
    at += kXattrCrcBytes;
  }
  std::memcpy(at, value.data(), value.size());
  return v;
}

std::string XattrItem::encode_in_pages(std::string_view name, uint32_t value_bytes,
                                       const std::vector<XattrPage>& pages, bool crc,
                                       uint32_t value_crc) {
  assert(!name.empty() && name.size() <= kNameMax && !pages.empty());
  const size_t extra = crc ? kXattrCrcBytes : 0;
  const size_t record = xattr_pages_size(uint32_t(pages.size()));
  std::string v(sizeof(XattrValue) + name.size() + extra + record, '\0');
  XattrValue x{uint8_t(name.size()), uint8_t(kXattrInPages | (crc ? kXattrCrc : 0)),
               uint16_t(extra + record)};
  XattrPages p{value_bytes, uint16_t(pages.size()), 0};
  char* at = v.data();
  std::memcpy(at, &x, sizeof x);
  std::memcpy(at += sizeof x, name.data(), name.size());
  at += name.size();
  if (crc) {
    std::memcpy(at, &value_crc, kXattrCrcBytes);
    at += kXattrCrcBytes;
  }
  std::memcpy(at, &p, sizeof p);
  std::memcpy(at + sizeof p, pages.data(), sizeof(XattrPage) * pages.size());
  return v;
}

size_t max_inline_xattr_value(uint32_t page_size, size_t name_len, bool crc) {
  size_t room = max_value_size(page_size) - sizeof(XattrValue) - (crc ? kXattrCrcBytes : 0);
  return name_len >= room ? 0 : room - name_len;
}

}  // namespace pagefs
