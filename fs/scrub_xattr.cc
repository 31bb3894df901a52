#include "fs/scrub_xattr.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>

namespace pagefs {

std::string format_scrub_status(const ScrubStatus& s) {
  char head[512];
  snprintf(head, sizeof head,
           "state: %s\nstarted: %" PRId64 "\nfinished: %" PRId64 "\npages_checked: %" PRIu64
           "\npages_total: %" PRIu64 "\nerrors: %" PRIu64 "\nrepaired: %" PRIu64
           "\nrate_mbps: %" PRIu64 "\n",
           scrub_state_name(s.state), s.started, s.finished, s.pages_checked, s.pages_total,
           s.errors, s.repaired, s.rate_mbps);
  std::string text = head;
  if (!s.failure.empty()) text += "failure: " + s.failure + "\n";
  size_t listed = 0;
  for (const ScrubDamage& d : s.damage) {
    std::string line = "damage: page " + std::to_string(d.page) +
                       (d.metadata ? " metadata " : " data ") +
                       (d.repaired ? "repaired " : "damaged ") + d.owner;
    if (!d.metadata) line += " offset " + std::to_string(d.offset);
    line += ": " + d.what + "\n";
    if (text.size() + line.size() + 64 > kScrubStatusMax) break;
    text += line;
    listed++;
  }
  if (listed < s.errors) text += "damage_more: " + std::to_string(s.errors - listed) + "\n";
  return text;
}

std::optional<ScrubCommand> parse_scrub_command(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.remove_suffix(1);
  ScrubCommand command;
  if (text == "cancel") {
    command.cancel = true;
    return command;
  }
  if (text == "start") return command;
  constexpr std::string_view kRate = "start rate=";
  if (!text.starts_with(kRate)) return std::nullopt;
  std::string_view value = text.substr(kRate.size());
  auto [end, error] =
      std::from_chars(value.data(), value.data() + value.size(), command.options.rate_mbps);
  if (error != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return command;
}

}  // namespace pagefs
