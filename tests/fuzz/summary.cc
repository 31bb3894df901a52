#include "tests/fuzz/summary.h"

#include <cstdio>
#include <set>

namespace pagefs::fuzz {
namespace {

std::string fsck_verdict(int code) {
  switch (code) {
    case 0:
      return "clean";
    case 4:
      return "errors";
    case 8:
      return "operational error";
    default:
      return "exit " + std::to_string(code);
  }
}

void print_failure(const ImageReport& r) {
  std::printf("FAIL %s (base %s): %s\n", r.label.c_str(), r.base.c_str(), r.rerun.c_str());
  for (const Mutation& m : r.mutations) {
    std::printf("  mutation %s%s: %s\n", m.cls.c_str(), m.lie ? " (lie)" : "", m.desc.c_str());
  }
  for (const Finding& f : r.findings) std::printf("  %s: %s\n", f.cls.c_str(), f.detail.c_str());
  for (const auto& [identity, m] : r.minimal) {
    std::printf("  minimal for %s: %s\n    mutation %s: %s\n", identity.c_str(), m.rerun.c_str(),
                m.mutation.cls.c_str(), m.mutation.desc.c_str());
  }
  if (!r.excerpt.empty()) std::printf("%s", r.excerpt.c_str());
  std::fflush(stdout);
}

}  // namespace

std::string failure_identity(const Finding& f) {
  return f.cls == "crash" || f.cls == "hang" ? f.detail : f.cls;
}

std::string Summary::class_key(const Finding& f, const ImageReport& r) {
  if (f.cls == "crash" || f.cls == "hang") return f.detail;
  auto minimal = r.minimal.find(failure_identity(f));
  if (minimal != r.minimal.end()) return f.cls + " after " + minimal->second.mutation.cls;
  std::set<std::string> classes;
  for (const Mutation& m : r.mutations) classes.insert(m.cls);
  std::string key = f.cls + " after";
  for (const std::string& c : classes) key += " " + c;
  return key;
}

void Summary::count_outcome(const ImageReport& r) {
  if (!r.outcome_seen) {
    outcomes_["did not finish (crash or hang)"]++;
    return;
  }
  const ImageOutcome& o = r.outcome;
  outcomes_["fsck -n before: " + fsck_verdict(o.fsck_before)]++;
  if (o.overlay_failed) outcomes_["fsck -n before: journal could not be laid over"]++;
  if (o.mount_error != 0) {
    outcomes_["mount refused"]++;
  } else {
    outcomes_[o.mount_only        ? "mounted and unmounted, nothing read or written"
              : o.read_errors > 0 ? "mounted, some reads failed (EIO etc.)"
                                  : "mounted, every read succeeded"]++;
    if (o.unmount_error > 0) outcomes_["unmount failed"]++;
  }
  if (o.lies > 0) outcomes_["lies served (not failures)"]++;
  outcomes_["fsck -n after: " + fsck_verdict(o.fsck_after)]++;
}

void Summary::add(const ImageReport& r) {
  images_++;
  bases_[r.base]++;
  for (const Mutation& m : r.mutations) mutations_[m.cls]++;
  count_outcome(r);
  if (r.findings.empty()) return;
  failed_images_++;
  print_failure(r);
  for (const Finding& f : r.findings) {
    FailureClass& c = failures_[class_key(f, r)];
    if (c.count++ > 0) continue;
    auto minimal = r.minimal.find(failure_identity(f));
    bool found = minimal != r.minimal.end();
    c.first_label = found ? minimal->second.rerun : r.rerun;
    c.first_detail = f.detail;
    c.first_mutations = found ? std::vector<Mutation>{minimal->second.mutation} : r.mutations;
  }
}

void Summary::print(double seconds) const {
  std::printf("\n==== image fuzzer summary (PAGEFS_SEED=%llu) ====\n", (unsigned long long)seed_);
  std::printf("%llu images in %.1f s (%.1f images/s), %llu failed\n", (unsigned long long)images_,
              seconds, seconds > 0 ? images_ / seconds : 0.0, (unsigned long long)failed_images_);
  std::printf("bases:\n");
  for (const auto& [name, n] : bases_)
    std::printf("  %8llu  %s\n", (unsigned long long)n, name.c_str());
  std::printf("mutations by class:\n");
  for (const auto& [name, n] : mutations_) {
    std::printf("  %8llu  %s\n", (unsigned long long)n, name.c_str());
  }
  std::printf("outcomes:\n");
  for (const auto& [name, n] : outcomes_) {
    std::printf("  %8llu  %s\n", (unsigned long long)n, name.c_str());
  }
  std::printf("distinct failure classes: %zu\n", failures_.size());
  for (const auto& [key, c] : failures_) {
    std::printf("  %6llu x %s\n", (unsigned long long)c.count, key.c_str());
    std::printf("           first: %s\n", c.first_label.c_str());
    for (const Mutation& m : c.first_mutations) {
      std::printf("             %s: %s\n", m.cls.c_str(), m.desc.c_str());
    }
    std::printf("             -> %s\n", c.first_detail.c_str());
  }
  std::fflush(stdout);
}

}  // namespace pagefs::fuzz
