// Summary: what a fuzz run saw, kept by the parent as images finish, printed
// at the end: images per base, mutations by class, outcomes (fsck verdicts,
// mount refused, mounted with errors, mounted clean), and the failures grouped
// into distinct classes, each with its count and the first image that showed
// it (index and mutations), so it can be run again alone.
//
// A failure's class is its crash signature for a crash or hang, otherwise the
// finding's class together with the class of the mutation that alone causes
// it (or, if none does alone, the classes of all the image's mutations).
//
// Thread-safety: none; the parent only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/fuzz/channel.h"

namespace pagefs::fuzz {

struct ImageReport {
  std::string label;  // "image 17" or "base clean"
  std::string rerun;  // the command line that checks this image alone
  std::string base;
  std::vector<Mutation> mutations;
  ImageOutcome outcome;
  bool outcome_seen = false;
  std::vector<Finding> findings;  // crash and hang included
  std::string excerpt;            // of the child's output, for failures
  // Per failure identity (below): a mutation that alone fails that way, and
  // the command that checks it alone.
  struct Minimal {
    Mutation mutation;
    std::string rerun;
  };
  std::map<std::string, Minimal> minimal;
};

// What a failure is, to tell whether a mutation alone fails the same way: the
// signature of a crash or hang, the class of any other finding.
std::string failure_identity(const Finding& f);

class Summary {
 public:
  explicit Summary(uint64_t seed) : seed_(seed) {}

  // Records one image; prints its failures, if any, at once.
  void add(const ImageReport& r);
  void print(double seconds) const;

  uint64_t images() const { return images_; }
  uint64_t failed_images() const { return failed_images_; }

 private:
  struct FailureClass {
    uint64_t count = 0;
    std::string first_label;
    std::string first_detail;
    std::vector<Mutation> first_mutations;
  };

  void count_outcome(const ImageReport& r);
  static std::string class_key(const Finding& f, const ImageReport& r);

  const uint64_t seed_;
  uint64_t images_ = 0;
  uint64_t failed_images_ = 0;
  std::map<std::string, uint64_t> bases_;
  std::map<std::string, uint64_t> mutations_;
  std::map<std::string, uint64_t> outcomes_;
  std::map<std::string, FailureClass> failures_;
};

}  // namespace pagefs::fuzz
