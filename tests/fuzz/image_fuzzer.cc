// image_fuzzer: mutates populated pagefs images and checks that fsck and the
// engine meet the damage as the design promises (docs: tests/fuzz/*.h).
//
//   image_fuzzer [--images N] [--seconds S] [--timeout S]
//   image_fuzzer --image I [--only J] [--fork] [--dump FILE]
//   image_fuzzer --list N
//
// Image i is a copy of one base image (base_image.h) with 1-3 mutations
// (mutator.h). Everything about it is drawn from Rngs seeded from
// mix(PAGEFS_SEED, i): the base and the number of mutations from one, each
// mutation j from its own, the check's choices from another. So
// `PAGEFS_SEED=S image_fuzzer --image i` checks image i of run S again, in this
// process (a debugger sees the crash) unless --fork is given; --only j applies
// mutation j alone; --dump also writes the mutated image to FILE, for
// fsck.pagefs and pagefs. --list N prints what images 0..N-1 are made of
// (base, mutations, whether only mounted) without checking them, to find an
// image of a given kind.
//
// When an image with several mutations fails, the run checks each mutation
// alone, and reports the one that fails the same way as the minimal
// reproducer.
//
// Knobs (the command line wins): PAGEFS_SEED (tests/test_env.h),
// PAGEFS_FUZZ_IMAGES (default 200, or no limit when a time is set),
// PAGEFS_FUZZ_SECONDS (0: no limit), PAGEFS_FUZZ_TIMEOUT (seconds one image
// may take before it counts as a hang; default 30).
//
// Exit status: 0 when no image failed, 1 when one did, 2 for a usage error,
// 3 when the base images cannot be built or fail unmutated.
#include <getopt.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fuzz/base_image.h"
#include "tests/fuzz/image_check.h"
#include "tests/fuzz/mutator.h"
#include "tests/fuzz/runner.h"
#include "tests/fuzz/summary.h"
#include "tests/test_env.h"

namespace pagefs::fuzz {
namespace {

constexpr uint64_t kDefaultImages = 200;
constexpr int kProgressSeconds = 10;
constexpr double kMountOnlyShare = 0.2;  // images only mounted and unmounted

struct Args {
  uint64_t images = 0;  // 0: the default
  uint64_t seconds = 0;
  int timeout_s = 30;
  int64_t image = -1;  // one image only
  int only = -1;       // with it: one of its mutations only
  uint64_t list = 0;   // images to describe without checking them
  bool fork = false;
  std::string dump;
  std::string program;
};

void usage(FILE* out) {
  std::fprintf(out,
               "Usage: image_fuzzer [--images N] [--seconds S] [--timeout S]\n"
               "       image_fuzzer --image I [--only J] [--fork] [--dump FILE]\n"
               "       image_fuzzer --list N\n"
               "Mutates populated pagefs images and checks fsck, mount, reads and writes on them.\n"
               "Environment: PAGEFS_SEED, PAGEFS_FUZZ_IMAGES, PAGEFS_FUZZ_SECONDS, "
               "PAGEFS_FUZZ_TIMEOUT.\n");
}

// Returns -1 to go on, or the exit status.
int parse_args(int argc, char** argv, Args* a) {
  static const option kOptions[] = {
      {"images", required_argument, nullptr, 'n'},  {"seconds", required_argument, nullptr, 's'},
      {"timeout", required_argument, nullptr, 't'}, {"image", required_argument, nullptr, 'i'},
      {"only", required_argument, nullptr, 'o'},    {"fork", no_argument, nullptr, 'f'},
      {"dump", required_argument, nullptr, 'd'},    {"list", required_argument, nullptr, 'l'},
      {"help", no_argument, nullptr, 'h'},          {nullptr, 0, nullptr, 0}};
  a->program = argv[0];
  a->images = testenv::env_u64("PAGEFS_FUZZ_IMAGES", 0);
  a->seconds = testenv::env_u64("PAGEFS_FUZZ_SECONDS", 0);
  a->timeout_s = int(testenv::env_u64("PAGEFS_FUZZ_TIMEOUT", 30));
  for (int c; (c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1;) {
    switch (c) {
      case 'n':
        a->images = std::strtoull(optarg, nullptr, 0);
        break;
      case 's':
        a->seconds = std::strtoull(optarg, nullptr, 0);
        break;
      case 't':
        a->timeout_s = std::atoi(optarg);
        break;
      case 'i':
        a->image = std::strtoll(optarg, nullptr, 0);
        break;
      case 'o':
        a->only = std::atoi(optarg);
        break;
      case 'f':
        a->fork = true;
        break;
      case 'd':
        a->dump = optarg;
        break;
      case 'l':
        a->list = std::strtoull(optarg, nullptr, 0);
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (a->images == 0) a->images = a->seconds ? UINT64_MAX : kDefaultImages;
  return -1;
}

// What image `index` is made of: its base and how many mutations it gets.
struct Plan {
  size_t base;
  int mutations;
};

Plan plan(uint64_t seed, uint64_t index, size_t bases) {
  Rng rng(mix(seed, index));
  size_t base = rng.below(bases);
  return Plan{base, 1 + int(rng.weighted({5, 3, 2}))};
}

// The seeds of image `index`'s mutation j and of its check.
uint64_t mutation_seed(uint64_t seed, uint64_t index, int j) {
  return mix(mix(seed, index), uint64_t(j) + 1);
}
uint64_t check_seed(uint64_t seed, uint64_t index) {
  return mix(mix(seed, index), 0);
}

void dump_image(const MemDevice& image, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f && std::fwrite(image.raw(), 1, image.size_bytes(), f) == image.size_bytes();
  if (f) ok = std::fclose(f) == 0 && ok;
  std::fprintf(stderr, ok ? "image written to %s\n" : "cannot write %s\n", path.c_str());
}

// The body of one image, run in a child (or in-process for --image): all its
// mutations, or only mutation `only`; then the check, unless `check` is false.
void fuzz_one(const std::vector<BaseImage>& bases, uint64_t seed, uint64_t index, int only,
              const std::string& dump, Channel& channel, bool check = true) {
  Plan p = plan(seed, index, bases.size());
  const BaseImage& base = bases[p.base];
  channel.phase("mutate");
  MemDevice image(base.device->size_bytes());
  std::memcpy(image.raw(), base.device->raw(), image.size_bytes());
  CheckOptions options;
  for (int j = 0; j < p.mutations; j++) {
    if (only >= 0 && j != only) continue;
    Rng rng(mutation_seed(seed, index, j));
    Mutation m = mutate_image(image, base.map, rng);
    channel.mutation(m);
    options.lies = options.lies || m.lie;
  }
  if (!dump.empty()) dump_image(image, dump);
  Rng rng(check_seed(seed, index));
  options.mount_only = rng.chance(kMountOnlyShare);
  if (!check) {
    channel.phase(std::string("base ") + base.name + (options.mount_only ? ", mount only" : ""));
    return;
  }
  check_image(image, base.oracle, options, rng, channel);
}

// The unmutated base, checked like an image: it must pass.
void check_base(const BaseImage& base, Channel& channel) {
  MemDevice image(base.device->size_bytes());
  std::memcpy(image.raw(), base.device->raw(), image.size_bytes());
  Rng rng(1);
  check_image(image, base.oracle, CheckOptions{}, rng, channel);
}

ImageReport report_of(const ChildResult& r, std::string label, std::string rerun,
                      std::string base) {
  ImageReport rep{std::move(label), std::move(rerun), std::move(base), r.log.mutations,
                  r.log.outcome,    r.finished,       r.log.findings,  ""};
  if (!r.finished) rep.findings.push_back({r.timed_out ? "hang" : "crash", crash_signature(r)});
  if (!rep.findings.empty()) rep.excerpt = output_excerpt(r.output);
  return rep;
}

std::string rerun_command(const Args& a, uint64_t seed, uint64_t index, int only = -1) {
  return "PAGEFS_SEED=" + std::to_string(seed) + " " + a.program + " --image " +
         std::to_string(index) + (only >= 0 ? " --only " + std::to_string(only) : "");
}

// Checks each mutation of a failed image alone; for each way the image
// failed, the first mutation that alone fails that way is its minimal
// reproducer.
void minimize(const Args& a, const std::vector<BaseImage>& bases, uint64_t seed, uint64_t index,
              ImageReport* rep) {
  for (int j = 0; j < int(rep->mutations.size()); j++) {
    ChildResult r =
        run_in_child([&](Channel& ch) { fuzz_one(bases, seed, index, j, "", ch); }, a.timeout_s);
    ImageReport alone = report_of(r, "", "", "");
    if (alone.mutations.size() != 1) continue;
    for (const Finding& f : alone.findings) {
      const std::string id = failure_identity(f);
      bool wanted = std::any_of(rep->findings.begin(), rep->findings.end(),
                                [&](const Finding& g) { return failure_identity(g) == id; });
      if (!wanted) continue;
      rep->minimal.try_emplace(
          id, ImageReport::Minimal{alone.mutations.front(), rerun_command(a, seed, index, j)});
    }
  }
}

bool build_bases(uint64_t seed, std::vector<BaseImage>* bases) {
  auto start = std::chrono::steady_clock::now();
  std::string error;
  if (!build_base_images(seed, bases, &error)) {
    std::printf("image fuzzer: cannot build the base images: %s\n", error.c_str());
    return false;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const BaseImage& b : *bases) {
    std::printf(
        "base %-8s tree height %u, %zu nodes, %zu items, %zu extents, %zu journal transactions, "
        "%zu inodes in the oracle\n",
        b.name.c_str(), b.map.sb.tree_height, b.map.nodes.size(), b.map.cells.size(),
        b.map.extents.size(), b.map.txns.size(), b.oracle.inode_count());
  }
  std::printf("base images built in %.1f s\n", s);
  return true;
}

// One image alone, for a reproducer.
int run_single(const Args& a, const std::vector<BaseImage>& bases, uint64_t seed) {
  auto body = [&](Channel& ch) { fuzz_one(bases, seed, uint64_t(a.image), a.only, a.dump, ch); };
  if (!a.fork) {
    Channel channel;
    body(channel);
    channel.done();
    return 0;
  }
  ChildResult r = run_in_child(body, a.timeout_s);
  std::fputs(r.output.c_str(), stdout);
  Summary summary(seed);
  summary.add(report_of(r, "image " + std::to_string(a.image),
                        rerun_command(a, seed, a.image, a.only),
                        bases[plan(seed, a.image, bases.size()).base].name));
  return summary.failed_images() ? 1 : 0;
}

// --list: what each image is made of.
int list_images(const Args& a, const std::vector<BaseImage>& bases, uint64_t seed) {
  for (uint64_t i = 0; i < a.list; i++) {
    std::fprintf(stderr, "[fuzz] image\t%llu\n", (unsigned long long)i);
    Channel channel;
    fuzz_one(bases, seed, i, -1, "", channel, false);
  }
  return 0;
}

bool bases_pass(const Args& a, const std::vector<BaseImage>& bases, Summary& summary) {
  for (const BaseImage& b : bases) {
    ChildResult r = run_in_child([&](Channel& ch) { check_base(b, ch); }, a.timeout_s);
    ImageReport rep = report_of(r, "base " + b.name, "(the unmutated base image)", b.name);
    if (!rep.findings.empty()) {
      summary.add(rep);
      std::printf("image fuzzer: the unmutated base image %s fails; fix that first\n",
                  b.name.c_str());
      return false;
    }
  }
  return true;
}

int run_all(const Args& a, const std::vector<BaseImage>& bases, uint64_t seed) {
  Summary summary(seed);
  if (!bases_pass(a, bases, summary)) return 3;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double last_progress = 0;
  for (uint64_t i = 0; i < a.images && (a.seconds == 0 || elapsed() < double(a.seconds)); i++) {
    ChildResult r =
        run_in_child([&](Channel& ch) { fuzz_one(bases, seed, i, -1, "", ch); }, a.timeout_s);
    ImageReport rep = report_of(r, "image " + std::to_string(i), rerun_command(a, seed, i),
                                bases[plan(seed, i, bases.size()).base].name);
    if (!rep.findings.empty() && rep.mutations.size() > 1) minimize(a, bases, seed, i, &rep);
    summary.add(rep);
    if (elapsed() - last_progress >= kProgressSeconds) {
      last_progress = elapsed();
      std::printf("... %llu images, %llu failed, %.1f images/s\n",
                  (unsigned long long)summary.images(), (unsigned long long)summary.failed_images(),
                  summary.images() / last_progress);
      std::fflush(stdout);
    }
  }
  summary.print(elapsed());
  return summary.failed_images() ? 1 : 0;
}

}  // namespace
}  // namespace pagefs::fuzz

int main(int argc, char** argv) {
  using namespace pagefs::fuzz;
  Args args;
  if (int status = parse_args(argc, argv, &args); status >= 0) return status;
  const uint64_t seed = pagefs::testenv::seed_from_env();
  std::printf("image fuzzer: PAGEFS_SEED=%llu\n", (unsigned long long)seed);
  std::vector<BaseImage> bases;
  if (!build_bases(seed, &bases)) return 3;
  if (args.list > 0) return list_images(args, bases, seed);
  return args.image >= 0 ? run_single(args, bases, seed) : run_all(args, bases, seed);
}
