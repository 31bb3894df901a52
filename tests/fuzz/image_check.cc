#include "tests/fuzz/image_check.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/report.h"
#include "tests/fuzz/tree_reader.h"
#include "tests/fuzz/write_phase.h"

namespace pagefs::fuzz {
namespace {

constexpr uint64_t kSmallCacheBytes = 2ull << 20;   // evicts: pages come back from the device
constexpr uint64_t kLargeCacheBytes = 64ull << 20;  // holds the image: pages stay cached
constexpr uint32_t kNoTimedCommit_s = 365u * 24 * 3600;

struct FsckVerdict {
  int code = -1;
  bool overlay_failed = false;
  std::string summary;  // the overlay's failure, or fsck's first report line
};

std::string errno_text(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : std::to_string(e);
}

// What `fsck.pagefs -n` does (fsck/main.cc), in-process: the journal laid over
// the device in memory, or, when that fails, the raw device. Its report goes
// to the image's log.
FsckVerdict fsck_n(MemDevice& image, const char* name) {
  FsckVerdict v;
  RecoveryResult recovered;
  std::string message;
  auto overlay = OverlayDevice::open(image, &recovered, &message);
  Device* target = &image;
  if (overlay.ok()) {
    target = overlay->get();
  } else {
    v.overlay_failed = true;
    v.summary = "the journal could not be laid over the device (" + message + ")";
    std::printf("%s: fsck -n: %s; checking the raw device, as fsck.pagefs -n does\n", name,
                v.summary.c_str());
  }
  if (overlay.ok() && recovered.transactions > 0) {
    std::printf("%s: fsck -n: would replay %llu journal transactions\n", name,
                (unsigned long long)recovered.transactions);
  }
  char* text = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&text, &len);
  {
    fsck::Report report(out, nullptr);
    fsck::Checker checker(*target, name, fsck::CheckOptions{}, report);
    v.code = checker.run();
  }
  std::fclose(out);
  std::string report(text, len);
  std::free(text);
  std::fputs(report.c_str(), stdout);
  std::fflush(stdout);
  if (v.summary.empty()) v.summary = report.substr(0, report.find('\n'));
  return v;
}

MountOptions mount_options(Rng& rng) {
  MountOptions options;
  options.cache_bytes = rng.chance(0.5) ? kSmallCacheBytes : kLargeCacheBytes;
  options.commit_interval_s = kNoTimedCommit_s;
  return options;
}

// Step 3a: a scrub to its end, which reads every page the tree names and
// repairs what it can. On an image fsck -n found clean it must find nothing.
// A scrub that does not end is a hang for the runner to see.
void scrub(FileSystem& fs, const FsckVerdict& before, Channel& channel) {
  channel.phase("scrub");
  ScrubOptions options;
  options.rate_mbps = 0;  // the default pace: a quarter of the (memory) device's time
  if (!fs.scrub_start(options).ok()) return;
  ScrubStatus s = fs.scrub_status();
  while (s.state == ScrubStatus::State::kRunning) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s = fs.scrub_status();
  }
  if (before.code != fsck::kExitClean) return;
  if (s.errors > 0) {
    const ScrubDamage& d = s.damage.front();
    channel.finding("fsck-clean-scrub-damage",
                    "fsck -n exited 0; the scrub found " + std::to_string(s.errors) +
                        " damaged pages, first page " + std::to_string(d.page) + " (" + d.owner +
                        "): " + d.what);
  } else if (s.state != ScrubStatus::State::kDone) {
    channel.finding("fsck-clean-scrub-failed", std::string("fsck -n exited 0; the scrub ended ") +
                                                   scrub_state_name(s.state) + ": " + s.failure);
  }
}

// Steps 3 and 4.
void read_and_write(FileSystem& fs, const Oracle& oracle, const CheckOptions& options,
                    const FsckVerdict& before, Rng& rng, Channel& channel, ImageOutcome* o) {
  if (rng.chance(0.5)) scrub(fs, before, channel);
  channel.phase("read");
  TreeReader reader(fs, oracle, options.lies, rng, channel);
  reader.read_all();
  o->read_errors = reader.errors();
  o->lies = reader.lies();
  o->files = reader.files();
  if (before.code == fsck::kExitClean && reader.errors() > 0) {
    channel.finding("fsck-clean-read-errors",
                    "fsck -n said clean, then " + std::to_string(reader.errors()) +
                        " calls failed reading the tree, first: " + reader.first_error());
  }
  channel.phase("write");
  o->write_errors = run_writes(fs, oracle, reader.suspects(), rng, options.writes);
}

// Steps 3-5 on a mounted image.
void exercise(std::unique_ptr<FileSystem> fs, const Oracle& oracle, const CheckOptions& options,
              const FsckVerdict& before, Rng& rng, Channel& channel, ImageOutcome* o) {
  if (!options.mount_only) read_and_write(*fs, oracle, options, before, rng, channel, o);
  channel.phase("unmount");
  Status st = fs->unmount();
  o->unmount_error = st.ok() ? 0 : st.error();
  channel.phase("destroy");
  fs.reset();
}

}  // namespace

void check_image(MemDevice& image, const Oracle& oracle, const CheckOptions& options, Rng& rng,
                 Channel& channel) {
  ImageOutcome o;
  o.mount_only = options.mount_only;
  channel.phase("fsck-before");
  FsckVerdict before = fsck_n(image, "before");
  o.fsck_before = before.code;
  o.overlay_failed = before.overlay_failed;
  channel.phase("mount");
  std::string message;
  auto fs = FileSystem::mount(std::make_unique<FaultDevice>(image, rng.next()), mount_options(rng),
                              &message);
  o.mount_error = fs.ok() ? 0 : fs.error();
  if (!fs.ok() && before.code == fsck::kExitClean) {
    channel.finding("fsck-clean-mount-refused",
                    "fsck -n exited 0" +
                        (before.overlay_failed ? " after: " + before.summary : std::string()) +
                        "; mount failed with " + errno_text(fs.error()) + ": " + message);
  }
  if (fs.ok()) exercise(std::move(fs).value(), oracle, options, before, rng, channel, &o);
  channel.phase("fsck-after");
  FsckVerdict after = fsck_n(image, "after");
  o.fsck_after = after.code;
  if (before.code == fsck::kExitClean && after.code != fsck::kExitClean) {
    channel.finding("clean-before-not-after", "fsck -n exited 0 before the mount and " +
                                                  std::to_string(after.code) +
                                                  " after it: " + after.summary);
  }
  channel.outcome(o);
}

}  // namespace pagefs::fuzz
