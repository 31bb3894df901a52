#include "fsck/run.h"

#include <memory>

#include "engine/recovery.h"
#include "fsck/checker.h"
#include "fsck/report.h"

namespace pagefs::fsck {

int run_fsck(Device& device, const std::string& name, const RunOptions& options) {
  std::string message;
  RecoveryResult recovered;
  std::unique_ptr<Device> overlay;
  Device* target = &device;
  if (options.replay) {
    Superblock sb;
    if (!recover_device(device, &sb, &recovered, &message).ok()) {
      fprintf(options.err, "fsck.pagefs: %s: %s\n", name.c_str(), message.c_str());
      return kExitOperational;
    }
  } else {
    // A device that is not pagefs at all is the checker's to report.
    auto view = OverlayDevice::open(device, &recovered, &message);
    if (view.ok()) {
      overlay = std::move(view).value();
      target = overlay.get();
    }
  }
  if (recovered.transactions > 0) {
    printf("%s: %s %llu journal transactions (%llu pages)\n", name.c_str(),
           options.replay ? "replayed" : "would replay (checking as replayed, in memory)",
           (unsigned long long)recovered.transactions, (unsigned long long)recovered.pages);
  }
  Report report;
  Checker checker(*target, name, CheckOptions{.verbose = options.verbose}, report);
  int code = checker.run();
  if (code == kExitClean && options.replay && recovered.transactions > 0) return 1;
  return code;
}

}  // namespace pagefs::fsck
