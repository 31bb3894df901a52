#include "engine/posix_acl.h"

#include <cassert>
#include <cstring>

namespace pagefs {
namespace {

constexpr uint32_t kXattrVersion = 2;  // POSIX_ACL_XATTR_VERSION
constexpr uint32_t kUndefinedId = UINT32_MAX;

// The kernel's order of tags (posix_acl_valid): each tag may follow the ones
// before it in this list. Returns the tag's rank, or -1 for an unknown tag.
int rank_of(uint16_t tag) {
  switch (tag) {
    case PosixAcl::kUserObj:
      return 0;
    case PosixAcl::kUser:
      return 1;
    case PosixAcl::kGroupObj:
      return 2;
    case PosixAcl::kGroup:
      return 3;
    case PosixAcl::kMask:
      return 4;
    case PosixAcl::kOther:
      return 5;
    default:
      return -1;
  }
}

// The tags that appear exactly once, and kMask, at most once.
bool single(uint16_t tag) {
  return tag != PosixAcl::kUser && tag != PosixAcl::kGroup;
}

// Entries in order, each single tag at most once, named ids increasing
// (so distinct); the three base entries present; a MASK if anything is named.
bool valid(const std::vector<PosixAcl::Entry>& entries) {
  int prev_rank = -1;
  uint32_t prev_id = 0;
  bool named = false, mask = false;
  int base = 0;
  for (const PosixAcl::Entry& e : entries) {
    int rank = rank_of(e.tag);
    if (rank < 0 || (e.perm & ~7u) != 0 || rank < prev_rank) return false;
    if (rank == prev_rank && (single(e.tag) || e.id <= prev_id)) return false;
    if (!single(e.tag)) named = true;
    if (e.tag == PosixAcl::kMask) mask = true;
    if (e.tag == PosixAcl::kUserObj || e.tag == PosixAcl::kGroupObj || e.tag == PosixAcl::kOther) {
      base++;
    }
    prev_rank = rank;
    prev_id = e.id;
  }
  return base == 3 && (mask || !named);
}

}  // namespace

Result<PosixAcl> PosixAcl::parse(std::string_view value) {
  if (value.size() < 4 || (value.size() - 4) % 8 != 0) return Err{EINVAL};
  const size_t count = (value.size() - 4) / 8;
  if (count > kMaxAclEntries) return Err{EINVAL};
  uint32_t version;
  std::memcpy(&version, value.data(), 4);
  if (version != kXattrVersion) return Err{EINVAL};
  PosixAcl acl;
  acl.entries_.resize(count);
  for (size_t i = 0; i < count; i++) {
    const char* at = value.data() + 4 + 8 * i;
    Entry& e = acl.entries_[i];
    std::memcpy(&e.tag, at, 2);
    std::memcpy(&e.perm, at + 2, 2);
    std::memcpy(&e.id, at + 4, 4);
  }
  if (!valid(acl.entries_)) return Err{EINVAL};
  return acl;
}

PosixAcl PosixAcl::from_mode(uint32_t mode) {
  PosixAcl acl;
  acl.entries_ = {{kUserObj, uint16_t((mode >> 6) & 7), kUndefinedId},
                  {kGroupObj, uint16_t((mode >> 3) & 7), kUndefinedId},
                  {kOther, uint16_t(mode & 7), kUndefinedId}};
  return acl;
}

std::string PosixAcl::encode() const {
  std::string value(4 + 8 * entries_.size(), '\0');
  std::memcpy(value.data(), &kXattrVersion, 4);
  for (size_t i = 0; i < entries_.size(); i++) {
    char* at = value.data() + 4 + 8 * i;
    std::memcpy(at, &entries_[i].tag, 2);
    std::memcpy(at + 2, &entries_[i].perm, 2);
    std::memcpy(at + 4, &entries_[i].id, 4);
  }
  return value;
}

PosixAcl::Entry* PosixAcl::find(uint16_t tag) {
  for (Entry& e : entries_) {
    if (e.tag == tag) return &e;
  }
  return nullptr;
}

uint32_t PosixAcl::mode_bits() const {
  uint32_t user = 0, group = 0, mask = 0, other = 0;
  bool has_mask = false;
  for (const Entry& e : entries_) {
    if (e.tag == kUserObj) user = e.perm;
    if (e.tag == kGroupObj) group = e.perm;
    if (e.tag == kMask) mask = e.perm, has_mask = true;
    if (e.tag == kOther) other = e.perm;
  }
  return user << 6 | (has_mask ? mask : group) << 3 | other;
}

bool PosixAcl::equivalent_to_mode() const {
  for (const Entry& e : entries_) {
    if (e.tag == kUser || e.tag == kGroup) return false;
  }
  return true;
}

void PosixAcl::apply_mode(uint32_t mode) {
  Entry* group = find(kMask);
  if (group == nullptr) group = find(kGroupObj);
  Entry* user = find(kUserObj);
  Entry* other = find(kOther);
  assert(user != nullptr && group != nullptr && other != nullptr);  // parse() checked
  user->perm = uint16_t((mode >> 6) & 7);
  group->perm = uint16_t((mode >> 3) & 7);
  other->perm = uint16_t(mode & 7);
}

// Worked example: a default ACL u::rwx,u:1000:rwx,g::r-x,m::rwx,o::r-x and a
// creat() asking for 0640 give u::rw-,u:1000:rwx,g::r-x,m::r--,o::--- (the
// named entry keeps its bits; the mask limits it to r--) and mode 0640.
uint32_t PosixAcl::create_masq(uint32_t mode, bool* store) {
  Entry* user = find(kUserObj);
  Entry* group = find(kMask);
  Entry* other = find(kOther);
  *store = group != nullptr || !equivalent_to_mode();
  if (group == nullptr) group = find(kGroupObj);
  assert(user != nullptr && group != nullptr && other != nullptr);  // parse() checked
  user->perm &= uint16_t((mode >> 6) & 7);
  group->perm &= uint16_t((mode >> 3) & 7);
  other->perm &= uint16_t(mode & 7);
  return (mode & ~0777u) | uint32_t(user->perm) << 6 | uint32_t(group->perm) << 3 | other->perm;
}

}  // namespace pagefs
