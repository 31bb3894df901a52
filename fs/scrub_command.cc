#include "fs/scrub_command.h"

#include <signal.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "fs/scrub_xattr.h"

namespace pagefs {
namespace {

constexpr int kExitClean = 0, kExitRepaired = 1, kExitDamage = 4, kExitFailed = 8, kExitUsage = 16;
constexpr auto kPollInterval = std::chrono::milliseconds(250);

volatile sig_atomic_t g_interrupted = 0;

void on_interrupt(int) {
  g_interrupted = 1;
}

struct Args {
  std::string mountpoint;
  std::string rate;  // empty: the default
  bool status = false;
  bool cancel = false;
};

int usage(const char* why) {
  fprintf(stderr, "pagefs: %s\n%s", why, scrub_usage_text());
  return kExitUsage;
}

int parse(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(scrub_usage_text(), stdout);
      return kExitClean;
    } else if (arg == "--status") {
      args->status = true;
    } else if (arg == "--cancel") {
      args->cancel = true;
    } else if (arg == "--rate" && i + 1 < argc) {
      args->rate = argv[++i];
      if (args->rate.find_first_not_of("0123456789") != std::string::npos || args->rate.empty()) {
        return usage("--rate takes a whole number of MB/s");
      }
    } else if (arg.starts_with("-") || !args->mountpoint.empty()) {
      return usage(("unexpected argument " + arg).c_str());
    } else {
      args->mountpoint = arg;
    }
  }
  if (args->mountpoint.empty()) return usage("expected a MOUNTPOINT");
  if (args->status && args->cancel) return usage("--status and --cancel exclude each other");
  return -1;
}

// The status text as "key: value" pairs, and the damage lines in order.
struct Report {
  std::map<std::string, std::string> fields;
  std::vector<std::string> damage;
  uint64_t number(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? 0 : strtoull(it->second.c_str(), nullptr, 10);
  }
};

bool read_status(const std::string& mountpoint, Report* out, int* error) {
  std::string buf(kScrubStatusMax + 4096, '\0');
  ssize_t n =
      getxattr(mountpoint.c_str(), std::string(kScrubXattrName).c_str(), buf.data(), buf.size());
  if (n < 0) {
    *error = errno;
    return false;
  }
  buf.resize(size_t(n));
  *out = Report{};
  for (size_t at = 0; at < buf.size();) {
    size_t end = buf.find('\n', at);
    if (end == std::string::npos) end = buf.size();
    const std::string line = buf.substr(at, end - at);
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) {
      const std::string key = line.substr(0, colon);
      if (key == "damage") {
        out->damage.push_back(line.substr(colon + 2));
      } else {
        out->fields[key] = line.substr(colon + 2);
      }
    }
    at = end + 1;
  }
  return true;
}

int command_error(const std::string& mountpoint, int error) {
  if (error == ENODATA || error == ENOTSUP || error == EOPNOTSUPP) {
    fprintf(stderr, "pagefs: %s is not the root of a pagefs mount\n", mountpoint.c_str());
  } else {
    fprintf(stderr, "pagefs: %s: %s\n", mountpoint.c_str(), strerror(error));
  }
  return kExitFailed;
}

int send(const std::string& mountpoint, const std::string& command) {
  if (setxattr(mountpoint.c_str(), std::string(kScrubXattrName).c_str(), command.data(),
               command.size(), 0) != 0) {
    if (errno == EBUSY) {
      fprintf(stderr, "pagefs: a scrub is already running on %s (--status, --cancel)\n",
              mountpoint.c_str());
      return kExitFailed;
    }
    return command_error(mountpoint, errno);
  }
  return -1;
}

// The exit code a finished scrub deserves.
int verdict(const Report& s) {
  const std::string& state = s.fields.count("state") ? s.fields.at("state") : "never";
  if (state == "failed" || state == "cancelled") return kExitFailed;
  const uint64_t errors = s.number("errors");
  if (errors == 0) return kExitClean;
  return s.number("repaired") == errors ? kExitRepaired : kExitDamage;
}

void print_summary(const std::string& mountpoint, const Report& s) {
  printf("%s: scrub %s: %llu pages checked, %llu damaged, %llu repaired\n", mountpoint.c_str(),
         s.fields.count("state") ? s.fields.at("state").c_str() : "?",
         (unsigned long long)s.number("pages_checked"), (unsigned long long)s.number("errors"),
         (unsigned long long)s.number("repaired"));
  if (s.fields.count("failure"))
    printf("%s: %s\n", mountpoint.c_str(), s.fields.at("failure").c_str());
}

void print_progress(const Report& s, bool tty, int* last_tenth) {
  const uint64_t total = std::max<uint64_t>(1, s.number("pages_total"));
  const double fraction = std::min(1.0, double(s.number("pages_checked")) / double(total));
  if (tty) {
    printf("\rscrub: %5.1f%% (%llu pages checked, %llu damaged)", fraction * 100,
           (unsigned long long)s.number("pages_checked"), (unsigned long long)s.number("errors"));
  } else if (int(fraction * 10) != *last_tenth) {
    *last_tenth = int(fraction * 10);
    printf("scrub: %d%%\n", *last_tenth * 10);
  }
  fflush(stdout);
}

// Follows a running scrub until it ends, printing each damaged page once, as
// the status lists it (Scrubber::status lists only what is settled).
int follow(const std::string& mountpoint) {
  const bool tty = isatty(STDOUT_FILENO);
  size_t printed = 0;
  int last_tenth = -1;
  bool cancelled = false;
  for (;;) {
    Report s;
    int error = 0;
    if (!read_status(mountpoint, &s, &error)) return command_error(mountpoint, error);
    for (; printed < s.damage.size(); printed++) {
      printf("%sscrub: %s\n", tty ? "\r\033[K" : "", s.damage[printed].c_str());
    }
    if (s.fields["state"] != "running") {
      if (tty) printf("\n");
      print_summary(mountpoint, s);
      return verdict(s);
    }
    print_progress(s, tty, &last_tenth);
    if (g_interrupted && !cancelled) {
      (void)send(mountpoint, "cancel");
      cancelled = true;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace

const char* scrub_usage_text() {
  return "usage: pagefs scrub [--rate MB/s] MOUNTPOINT   verify every page of a mounted pagefs\n"
         "       pagefs scrub --status MOUNTPOINT        the running or last scrub\n"
         "       pagefs scrub --cancel MOUNTPOINT        stop a running scrub\n"
         "  exit status: 0 no damage, 1 damage found and repaired, 4 damage left,\n"
         "  8 failed or cancelled, 16 usage error\n";
}

int run_scrub_command(int argc, char** argv) {
  Args args;
  if (int code = parse(argc, argv, &args); code >= 0) return code;
  if (args.cancel) {
    int code = send(args.mountpoint, "cancel");
    return code >= 0 ? code : kExitClean;
  }
  if (args.status) {
    Report s;
    int error = 0;
    if (!read_status(args.mountpoint, &s, &error)) return command_error(args.mountpoint, error);
    for (const std::string& line : s.damage) printf("scrub: %s\n", line.c_str());
    print_summary(args.mountpoint, s);
    return s.fields["state"] == "running" ? kExitClean : verdict(s);
  }
  signal(SIGINT, on_interrupt);
  signal(SIGTERM, on_interrupt);
  const std::string command = args.rate.empty() ? "start" : "start rate=" + args.rate;
  if (int code = send(args.mountpoint, command); code >= 0) return code;
  return follow(args.mountpoint);
}

}  // namespace pagefs
