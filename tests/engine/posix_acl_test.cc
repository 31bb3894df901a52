// PosixAcl: the xattr form of an ACL parsed and checked, and the mode rules
// (what an ACL gives the mode, chmod, inheritance).
#include "engine/posix_acl.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

namespace pagefs {
namespace {

using E = PosixAcl::Entry;
constexpr uint32_t kNoId = UINT32_MAX;

std::string value_of(const std::vector<E>& entries, uint32_t version = 2) {
  std::string v(4 + 8 * entries.size(), '\0');
  std::memcpy(v.data(), &version, 4);
  for (size_t i = 0; i < entries.size(); i++) {
    std::memcpy(v.data() + 4 + 8 * i, &entries[i].tag, 2);
    std::memcpy(v.data() + 6 + 8 * i, &entries[i].perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &entries[i].id, 4);
  }
  return v;
}

// u::rwx,u:1000:rw-,g::r-x,g:50:r--,m::rwx,o::r--
const std::vector<E> kFull = {{PosixAcl::kUserObj, 7, kNoId},  {PosixAcl::kUser, 6, 1000},
                              {PosixAcl::kGroupObj, 5, kNoId}, {PosixAcl::kGroup, 4, 50},
                              {PosixAcl::kMask, 7, kNoId},     {PosixAcl::kOther, 4, kNoId}};
const std::vector<E> kMinimal = {
    {PosixAcl::kUserObj, 6, kNoId}, {PosixAcl::kGroupObj, 4, kNoId}, {PosixAcl::kOther, 0, kNoId}};

uint16_t perm_of(const PosixAcl& acl, uint16_t tag, uint32_t id = kNoId) {
  for (const E& e : acl.entries()) {
    if (e.tag == tag && (id == kNoId || e.id == id)) return e.perm;
  }
  ADD_FAILURE() << "no entry with tag " << tag;
  return 0xffff;
}

TEST(PosixAclTest, AValidAclParsesAndEncodesToTheSameBytes) {
  for (const auto& entries : {kFull, kMinimal}) {
    const std::string v = value_of(entries);
    auto acl = PosixAcl::parse(v);
    ASSERT_TRUE(acl.ok());
    EXPECT_EQ(acl->entries().size(), entries.size());
    EXPECT_EQ(acl->encode(), v);
  }
}

// u::, `users` named users, g::, m::, o::.
std::vector<E> with_users(size_t users) {
  std::vector<E> e = {{PosixAcl::kUserObj, 7, kNoId}};
  for (uint32_t i = 0; i < users; i++) e.push_back(E{PosixAcl::kUser, 4, 100 + i});
  e.insert(
      e.end(),
      {{PosixAcl::kGroupObj, 5, kNoId}, {PosixAcl::kMask, 7, kNoId}, {PosixAcl::kOther, 4, kNoId}});
  return e;
}

TEST(PosixAclTest, MalformedAclsAreEinval) {
  auto without = [](size_t i) {
    std::vector<E> e = kFull;
    e.erase(e.begin() + long(i));
    return e;
  };
  std::vector<E> swapped = kFull;
  std::swap(swapped[0], swapped[2]);
  std::vector<E> bad_perm = kFull;
  bad_perm[1].perm = 8;
  std::vector<E> unknown_tag = kFull;
  unknown_tag[3].tag = 0x40;
  std::vector<E> duplicate_user = kFull;
  duplicate_user.insert(duplicate_user.begin() + 1, E{PosixAcl::kUser, 4, 1000});
  std::vector<E> two_masks = kFull;
  two_masks.insert(two_masks.begin() + 4, E{PosixAcl::kMask, 4, kNoId});
  const std::vector<std::string> bad = {
      "",
      std::string("\2\0\0", 3),
      value_of(kFull, 1),                        // an unknown version
      value_of(kFull) + "x",                     // not a whole number of entries
      value_of({}),                              // no entries
      value_of(without(0)),                      // no owner entry
      value_of(without(2)),                      // no owning-group entry
      value_of(without(4)),                      // named entries without a mask
      value_of(without(5)),                      // no other entry
      value_of(swapped),                         // out of order
      value_of(bad_perm),                        // a permission beyond rwx
      value_of(unknown_tag),                     // a tag no ACL has
      value_of(duplicate_user),                  // one user named twice
      value_of(two_masks),                       // two masks
      value_of(with_users(kMaxAclEntries - 3)),  // one entry too many
  };
  EXPECT_TRUE(PosixAcl::parse(value_of(with_users(kMaxAclEntries - 4))).ok()) << "the most";
  for (size_t i = 0; i < bad.size(); i++) {
    EXPECT_EQ(PosixAcl::parse(bad[i]).error(), EINVAL) << "case " << i;
  }
}

TEST(PosixAclTest, TheMaskStandsForTheGroupBitsOfTheMode) {
  auto full = PosixAcl::parse(value_of(kFull));
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->mode_bits(), 0774u);
  EXPECT_FALSE(full->equivalent_to_mode());
  auto minimal = PosixAcl::parse(value_of(kMinimal));
  ASSERT_TRUE(minimal.ok());
  EXPECT_EQ(minimal->mode_bits(), 0640u);
  EXPECT_TRUE(minimal->equivalent_to_mode());
  EXPECT_EQ(PosixAcl::from_mode(0640).encode(), minimal->encode());
}

TEST(PosixAclTest, ChmodSetsOwnerMaskAndOtherAndKeepsNamedEntries) {
  auto acl = PosixAcl::parse(value_of(kFull));
  ASSERT_TRUE(acl.ok());
  acl->apply_mode(0750);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kUserObj), 7);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kMask), 5);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kGroupObj), 5) << "the mask took the group bits";
  EXPECT_EQ(perm_of(*acl, PosixAcl::kOther), 0);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kUser, 1000), 6);
  EXPECT_EQ(acl->mode_bits(), 0750u);

  auto minimal = PosixAcl::parse(value_of(kMinimal));
  ASSERT_TRUE(minimal.ok());
  minimal->apply_mode(0705);
  EXPECT_EQ(perm_of(*minimal, PosixAcl::kGroupObj), 0) << "without a mask, the owning group";
  EXPECT_EQ(minimal->mode_bits(), 0705u);
}

// The worked example in posix_acl.cc.
TEST(PosixAclTest, InheritanceMasksTheAclAndTheModeByEachOther) {
  auto acl = PosixAcl::parse(value_of({{PosixAcl::kUserObj, 7, kNoId},
                                       {PosixAcl::kUser, 7, 1000},
                                       {PosixAcl::kGroupObj, 5, kNoId},
                                       {PosixAcl::kMask, 7, kNoId},
                                       {PosixAcl::kOther, 5, kNoId}}));
  ASSERT_TRUE(acl.ok());
  bool store = false;
  EXPECT_EQ(acl->create_masq(S_IFREG | 0640, &store), uint32_t(S_IFREG | 0640));
  EXPECT_TRUE(store);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kUserObj), 6);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kUser, 1000), 7);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kMask), 4);
  EXPECT_EQ(perm_of(*acl, PosixAcl::kOther), 0);

  // A default ACL of base entries only masks the mode; nothing to store.
  auto minimal = PosixAcl::parse(value_of({{PosixAcl::kUserObj, 7, kNoId},
                                           {PosixAcl::kGroupObj, 0, kNoId},
                                           {PosixAcl::kOther, 5, kNoId}}));
  ASSERT_TRUE(minimal.ok());
  EXPECT_EQ(minimal->create_masq(S_IFDIR | 0777, &store), uint32_t(S_IFDIR | 0705));
  EXPECT_FALSE(store);
}

}  // namespace
}  // namespace pagefs
