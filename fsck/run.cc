#include "fsck/run.h"

#include <memory>
#include <set>
#include <string>

#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/geometry.h"
#include "fsck/repair.h"
#include "fsck/report.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

// fsck -n checks what a mount would see: the device with the journal laid
// over it, by the code recovery runs. A device with no superblock a mount
// would accept is checked as it is (the checker says what is wrong with it);
// a journal that cannot be read fails the check, since a mount would fail
// there too and nobody can tell what it would have seen.
Status lay_journal(Device& device, std::unique_ptr<Device>* overlay, RecoveryResult* recovered,
                   std::string* message) {
  Superblock sb;
  std::string refused;
  if (!load_superblock(device, &sb, &refused).ok()) return ok_status();
  auto view = OverlayDevice::open(device, sb, recovered, message);
  if (!view.ok()) return Err{view.error()};
  *overlay = std::move(view).value();
  return ok_status();
}

// The filesystem as a mount would find it, or an exit code to stop with.
struct Prepared {
  Device* target = nullptr;
  std::unique_ptr<Device> overlay;
  RecoveryResult recovered;
  Superblock sb{};
  bool has_sb = false;
};

int prepare(Device& device, const std::string& name, const RunOptions& options, Prepared* p) {
  std::string message;
  p->target = &device;
  if (options.mode != Mode::kCheck) {
    // A device no mount accepts is left to the checker (and the repair of
    // its superblock); only a journal that cannot be replayed stops here.
    Status loaded = load_superblock(device, &p->sb, &message);
    if (!loaded.ok()) return -1;
    if (!recover_device(device, &p->sb, &p->recovered, &message).ok()) {
      fprintf(options.err, "fsck.pagefs: %s: %s\n", name.c_str(), message.c_str());
      return kExitOperational;
    }
    p->has_sb = true;
  } else {
    if (!lay_journal(device, &p->overlay, &p->recovered, &message).ok()) {
      fprintf(options.err, "fsck.pagefs: %s: %s; cannot check what a mount would see\n",
              name.c_str(), message.c_str());
      return kExitUncorrected;
    }
    if (p->overlay) p->target = p->overlay.get();
    p->has_sb = load_superblock(device, &p->sb, &message).ok();
  }
  if (p->recovered.transactions > 0) {
    fprintf(options.out, "%s: %s %llu journal transactions (%llu pages)\n", name.c_str(),
            options.mode != Mode::kCheck ? "replayed"
                                         : "would replay (checking as replayed, in memory)",
            ull(p->recovered.transactions), ull(p->recovered.pages));
  }
  return -1;
}

void print_summary(FILE* out, const std::string& name, const char* state, const CheckSummary& s) {
  fprintf(out, "%s: %s, %llu files, %llu directories, %llu/%llu pages used\n", name.c_str(), state,
          ull(s.files), ull(s.directories), ull(s.pages_used), ull(s.page_count));
}

// What the rounds of checks and repairs came to.
struct Outcome {
  std::set<std::string> printed;  // problems printed by earlier rounds
  uint64_t fixed = 0;
  uint64_t left = 0;
  bool operational = false;
  CheckSummary summary;
  Superblock sb{};
};

// One check; then, if allowed, its repair. True if another round is needed.
bool round(Device& device, const std::string& name, const RunOptions& options, Progress* progress,
           Outcome* outcome) {
  Report report(options.out);
  report.skip_printed(&outcome->printed);
  CheckOptions check{options.verbose, options.mode, options.zero_bad_data, progress, options.err};
  Checker checker(device, name, check, report);
  const int code = checker.run();
  outcome->summary = checker.summary();
  outcome->sb = checker.superblock();
  outcome->left = checker.fixable() + checker.unfixable();
  if (code == kExitOperational) {
    outcome->operational = true;
    return false;
  }
  if (options.mode == Mode::kCheck) return false;
  if (options.mode == Mode::kPreen && checker.needs_judgement()) {
    fprintf(options.out,
            "\n%s: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n"
            "\t(i.e., without -a or -p options)\n",
            name.c_str());
    return false;
  }
  if (checker.fixable() == 0) return false;
  Repairer repairer(device, checker.superblock(), checker.plan(), options.out);
  Status st = repairer.apply();
  if (!st.ok()) {
    fprintf(options.err, "fsck.pagefs: %s: the repair failed: %s\n", name.c_str(),
            strerror(st.error()));
    outcome->operational = true;
    return false;
  }
  outcome->fixed += checker.fixable();
  return true;
}

int conclude(Device& device, const std::string& name, const RunOptions& options,
             const Prepared& prepared, Outcome& outcome) {
  if (outcome.operational) return kExitOperational;
  const bool changed = outcome.fixed > 0 || prepared.recovered.transactions > 0;
  if (changed && options.mode != Mode::kCheck) {
    fprintf(options.out, "\n%s: ***** FILE SYSTEM WAS MODIFIED *****\n", name.c_str());
  }
  if (outcome.left == 0) {
    if (options.mode != Mode::kCheck && outcome.sb.state != uint32_t(FsState::kClean)) {
      RepairPlan none;
      Repairer marker(device, outcome.sb, none, options.out);
      if (!marker.mark_clean().ok()) return kExitOperational;
    }
    const char* state = outcome.fixed > 0 ? "repaired" : "clean";
    print_summary(options.out, name, state, outcome.summary);
    return changed && options.mode != Mode::kCheck ? kExitFixed : kExitClean;
  }
  char state[96];
  snprintf(state, sizeof state, "%llu error%s fixed, %llu left", ull(outcome.fixed),
           outcome.fixed == 1 ? "" : "s", ull(outcome.left));
  if (outcome.fixed == 0) {
    snprintf(state, sizeof state, "%llu error%s found", ull(outcome.left),
             outcome.left == 1 ? "" : "s");
  }
  print_summary(options.out, name, state, outcome.summary);
  return kExitUncorrected;
}

// fsck -y on a device whose superblock copies are both unusable: rebuilds
// them (geometry.h) before anything else reads the filesystem. Returns an
// exit code to stop with, or -1 to go on.
int restore_superblock(Device& device, const std::string& name, const RunOptions& options,
                       Outcome* outcome) {
  Superblock sb;
  std::string message;
  Status loaded = load_superblock(device, &sb, &message);
  if (loaded.ok() || loaded.error() == EPROTONOSUPPORT) return -1;
  std::string how;
  Status rebuilt = rebuild_superblock(device, &sb, &how);
  if (rebuilt.error() == EINVAL) return -1;  // not pagefs: the check says so
  if (!rebuilt.ok()) {
    fprintf(options.err, "fsck.pagefs: %s: cannot rebuild the superblock: %s\n", name.c_str(),
            strerror(rebuilt.error()));
    return kExitOperational;
  }
  fprintf(options.out,
          "fsck.pagefs: superblock: both copies are damaged or missing; rebuild them from %s? "
          "yes\n",
          how.c_str());
  outcome->fixed++;
  return -1;
}

}  // namespace

int run_fsck(Device& device, const std::string& name, const RunOptions& options) {
  Outcome outcome;
  if (options.mode == Mode::kRepair) {
    if (int code = restore_superblock(device, name, options, &outcome); code >= 0) return code;
  }
  Prepared prepared;
  if (int code = prepare(device, name, options, &prepared); code >= 0) return code;
  const bool may_skip =
      options.mode == Mode::kPreen || (options.mode == Mode::kCheck && !options.explicit_check);
  if (may_skip && !options.force && prepared.has_sb && prepared.recovered.transactions == 0 &&
      prepared.sb.state == uint32_t(FsState::kClean)) {
    fprintf(options.out, "%s: clean, %llu inodes, %llu/%llu pages used\n", name.c_str(),
            ull(prepared.sb.inode_count), ull(prepared.sb.page_count - prepared.sb.free_pages),
            ull(prepared.sb.page_count));
    return kExitClean;
  }
  std::unique_ptr<Progress> progress;
  if (options.progress_fd >= 0) progress = std::make_unique<Progress>(options.progress_fd, name);
  for (int pass = 0; pass < kMaxPasses; pass++) {
    if (!round(*prepared.target, name, options, progress.get(), &outcome)) break;
  }
  return conclude(*prepared.target, name, options, prepared, outcome);
}

}  // namespace pagefs::fsck
