// Tree node mutations: one layout field of one node made impossible, with the
// page's CRC recomputed, so only validation of what was read can catch it.
#include <string>
#include <vector>

#include "tests/fuzz/mutation_context.h"
#include "tests/fuzz/raw_node.h"

namespace pagefs::fuzz {
namespace {

struct Target {
  TreeNodeRef ref;
  RawNode node;
  std::string name;  // "node 1234 (level 1)"
};

// A value chosen from candidates, different from `old` when possible.
uint64_t pick_other(Rng& rng, std::vector<uint64_t> candidates, uint64_t old) {
  uint64_t v = rng.pick(candidates);
  return v == old ? old + 1 : v;
}

// A cell of the node that still lies inside the page, as (index, offset).
bool pick_cell(MutationContext& ctx, const RawNode& node, uint16_t* i, size_t* cell) {
  for (int tries = 0; tries < 8 && node.count() > 0; tries++) {
    *i = uint16_t(ctx.rng.below(node.count()));
    if (auto c = node.cell(*i)) return *cell = *c, true;
  }
  return false;
}

std::string level(MutationContext& ctx, Target& t) {
  uint16_t old = t.node.level();
  std::vector<uint64_t> c = {old + 1u, uint64_t(old ^ 1), ctx.rng.range(2, 65535)};
  if (old > 0) c.insert(c.end(), {old - 1u, 0});
  uint16_t v = uint16_t(pick_other(ctx.rng, c, old));
  t.node.set_level(v);
  return "level " + std::to_string(old) + " -> " + std::to_string(v);
}

std::string count(MutationContext& ctx, Target& t, bool* lie) {
  uint16_t old = t.node.count();
  size_t how = ctx.rng.weighted({3, 1, 1, old >= 2 ? 2u : 0u});
  uint16_t v = how == 0   ? uint16_t(old + ctx.rng.range(1, 5))
               : how == 1 ? uint16_t(ctx.rng.range(old + 100u, 65535))
               : how == 2 ? 0
                          : uint16_t(old - 1);
  // Dropping the last cell leaves a valid-looking node with one item fewer.
  *lie = how == 3;
  t.node.set_count(v);
  return "count " + std::to_string(old) + " -> " + std::to_string(v);
}

std::string cell_start(MutationContext& ctx, Target& t) {
  uint16_t old = t.node.cell_start();
  uint64_t slots_end = kSlotsOffset + 2 * uint64_t(t.node.count());
  uint16_t v = uint16_t(pick_other(ctx.rng,
                                   {0, ctx.rng.below(ctx.ps()), old + ctx.rng.range(1, 64),
                                    slots_end - 1, ctx.ps() - 1, old - 1u},
                                   old));
  t.node.set_cell_start(v);
  return "cell_start " + std::to_string(old) + " -> " + std::to_string(v);
}

std::string slot(MutationContext& ctx, Target& t) {
  uint16_t i = uint16_t(ctx.rng.below(t.node.count()));
  uint16_t old = t.node.slot(i).value_or(0);
  uint16_t other = t.node.slot(uint16_t(ctx.rng.below(t.node.count()))).value_or(0);
  uint16_t v = uint16_t(pick_other(ctx.rng,
                                   {ctx.rng.below(ctx.ps()), other, old + 1u, old - 1u,
                                    ctx.ps() - 1, 0, ctx.ps() - kCellOverhead + 1},
                                   old));
  t.node.set_slot(i, v);
  return "slot " + std::to_string(i) + " " + std::to_string(old) + " -> " + std::to_string(v);
}

std::string key_kind(MutationContext& ctx, Target& t) {
  uint16_t i;
  size_t cell;
  if (!pick_cell(ctx, t.node, &i, &cell)) return "";
  DiskKey k = t.node.key_at(cell);
  uint8_t old = k.kind;
  k.kind = uint8_t(pick_other(ctx.rng, {0, 6, 7, 0x80, 0xff, ctx.rng.range(6, 255)}, old));
  t.node.set_key_at(cell, k);
  return "cell " + std::to_string(i) + " key kind " + std::to_string(old) + " -> " +
         std::to_string(k.kind);
}

std::string key_order(MutationContext& ctx, Target& t) {
  uint16_t n = t.node.count();
  if (n < 2) return "";
  uint16_t i = uint16_t(ctx.rng.below(n - 1));
  uint16_t j = ctx.rng.chance(0.7) ? uint16_t(i + 1) : uint16_t(ctx.rng.below(n));
  if (i == j) j = uint16_t(i + 1);
  uint16_t a = t.node.slot(i).value_or(0), b = t.node.slot(j).value_or(0);
  t.node.set_slot(i, b);
  t.node.set_slot(j, a);
  return "slots " + std::to_string(i) + " and " + std::to_string(j) + " swapped (key order)";
}

std::string value_len(MutationContext& ctx, Target& t) {
  uint16_t i;
  size_t cell;
  if (!pick_cell(ctx, t.node, &i, &cell)) return "";
  uint16_t old = t.node.value_len_at(cell);
  uint16_t v = uint16_t(pick_other(
      ctx.rng,
      {0, old + 1u, old - 1u, old + ctx.rng.range(2, 200), 0xffff, ctx.rng.below(ctx.ps())}, old));
  t.node.set_value_len_at(cell, v);
  return "cell " + std::to_string(i) + " value length " + std::to_string(old) + " -> " +
         std::to_string(v);
}

// A page a child pointer might wrongly name, and what it is.
uint64_t bad_child(MutationContext& ctx, const TreeNodeRef& ref, std::string* what) {
  static const char* kWhat[] = {"another node", "itself",        "its parent",      "the root",
                                "a data page",  "a bitmap page", "a journal page",  "page 0",
                                "page 1",       "past the end",  "far past the end"};
  size_t k = ctx.rng.weighted({4, 2, ref.parent ? 2u : 0u, 1, 2, 1, 1, 1, 1, 1, 1});
  *what = kWhat[k];
  const uint64_t pc = ctx.page_count();
  const uint64_t choices[] = {ctx.node_page(),
                              ref.page,
                              ref.parent,
                              ctx.map.sb.tree_root,
                              ctx.data_page(),
                              ctx.bitmap_page(),
                              ctx.journal_page(),
                              0,
                              1,
                              pc + ctx.rng.below(100),
                              UINT64_MAX - ctx.rng.below(4)};
  return choices[k];
}

std::string child(MutationContext& ctx, Target& t) {
  uint16_t i;
  size_t cell;
  if (t.node.level() == 0 || !pick_cell(ctx, t.node, &i, &cell)) return "";
  if (t.node.value_len_at(cell) != sizeof(uint64_t)) return "";
  uint64_t old, v;
  std::memcpy(&old, t.node.value_at(cell), sizeof old);
  std::string what;
  v = bad_child(ctx, t.ref, &what);
  std::memcpy(t.node.value_at(cell), &v, sizeof v);
  return "child " + std::to_string(i) + " " + std::to_string(old) + " -> " + std::to_string(v) +
         " (" + what + ")";
}

// Internal nodes half the time, if the tree has any: they are few.
TreeNodeRef pick_node(MutationContext& ctx) {
  std::vector<TreeNodeRef> internal;
  for (const TreeNodeRef& n : ctx.map.nodes) {
    if (n.level > 0) internal.push_back(n);
  }
  if (!internal.empty() && ctx.rng.chance(0.5)) return ctx.rng.pick(internal);
  return ctx.rng.pick(ctx.map.nodes);
}

}  // namespace

Mutation mutate_node(MutationContext& ctx) {
  TreeNodeRef ref = pick_node(ctx);
  Target t{ref, RawNode(ctx.page(ref.page), ctx.ps()),
           "node " + std::to_string(ref.page) + " (level " + std::to_string(ref.level) + ")"};
  if (!t.node.is_node() || t.node.count() == 0) return mutate_raw(ctx);
  static const char* kClasses[] = {"node.level",     "node.count",    "node.cell_start",
                                   "node.slot",      "node.key_kind", "node.key_order",
                                   "node.value_len", "node.child"};
  size_t k = ctx.rng.weighted({2, 2, 1, 2, 2, 2, 2, ref.level > 0 ? 5u : 0u});
  bool lie = false;
  std::string what = k == 0   ? level(ctx, t)
                     : k == 1 ? count(ctx, t, &lie)
                     : k == 2 ? cell_start(ctx, t)
                     : k == 3 ? slot(ctx, t)
                     : k == 4 ? key_kind(ctx, t)
                     : k == 5 ? key_order(ctx, t)
                     : k == 6 ? value_len(ctx, t)
                              : child(ctx, t);
  if (what.empty()) return mutate_raw(ctx);
  ctx.restamp(ref.page);
  std::string cls = kClasses[k];
  if (lie) cls = "node.count_drop";
  return Mutation{cls, t.name + ": " + what + ", crc recomputed", lie};
}

}  // namespace pagefs::fuzz
