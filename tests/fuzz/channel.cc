#include "tests/fuzz/channel.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace pagefs::fuzz {
namespace {

std::string clean(std::string s) {
  for (char& c : s) {
    if (c == '\t' || c == '\n') c = ' ';
  }
  return s;
}

// "k=v k=v" for the outcome line, and back.
std::string encode(const ImageOutcome& o) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "fsck_before=%d overlay_failed=%d mount_error=%d mount_only=%d read_errors=%llu "
                "lies=%llu files=%llu write_errors=%llu unmount_error=%d fsck_after=%d",
                o.fsck_before, int(o.overlay_failed), o.mount_error, int(o.mount_only),
                (unsigned long long)o.read_errors, (unsigned long long)o.lies,
                (unsigned long long)o.files, (unsigned long long)o.write_errors, o.unmount_error,
                o.fsck_after);
  return buf;
}

void decode(const std::string& text, ImageOutcome* o) {
  std::istringstream in(text);
  std::string kv;
  while (in >> kv) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string k = kv.substr(0, eq);
    long long v = std::strtoll(kv.c_str() + eq + 1, nullptr, 10);
    if (k == "fsck_before") o->fsck_before = int(v);
    if (k == "overlay_failed") o->overlay_failed = v != 0;
    if (k == "mount_error") o->mount_error = int(v);
    if (k == "mount_only") o->mount_only = v != 0;
    if (k == "read_errors") o->read_errors = uint64_t(v);
    if (k == "lies") o->lies = uint64_t(v);
    if (k == "files") o->files = uint64_t(v);
    if (k == "write_errors") o->write_errors = uint64_t(v);
    if (k == "unmount_error") o->unmount_error = int(v);
    if (k == "fsck_after") o->fsck_after = int(v);
  }
}

// Splits "a\tb\tc" into at most n fields; the last keeps any further tabs.
std::vector<std::string> fields(const std::string& line, size_t n) {
  std::vector<std::string> out;
  size_t at = 0;
  while (out.size() + 1 < n) {
    size_t tab = line.find('\t', at);
    if (tab == std::string::npos) break;
    out.push_back(line.substr(at, tab - at));
    at = tab + 1;
  }
  out.push_back(line.substr(at));
  return out;
}

}  // namespace

void Channel::send(const std::string& line) {
  if (fd_ < 0) {
    std::fprintf(stderr, "[fuzz] %s\n", line.c_str());
    return;
  }
  std::string l = line + "\n";
  for (size_t at = 0; at < l.size();) {
    ssize_t n = ::write(fd_, l.data() + at, l.size() - at);
    if (n <= 0) return;  // the parent is gone; nothing left to tell
    at += size_t(n);
  }
}

void Channel::mutation(const Mutation& m) {
  send("mutation\t" + clean(m.cls) + "\t" + (m.lie ? "1" : "0") + "\t" + clean(m.desc));
}

void Channel::phase(const std::string& name) {
  send("phase\t" + clean(name));
}

void Channel::finding(const std::string& cls, const std::string& detail) {
  send("finding\t" + clean(cls) + "\t" + clean(detail));
}

void Channel::outcome(const ImageOutcome& o) {
  send("outcome\t" + encode(o));
}

void Channel::done() {
  send("done");
}

ChannelLog parse_channel(const std::string& text) {
  ChannelLog log;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = fields(line, 4);
    if (f[0] == "mutation" && f.size() == 4) {
      log.mutations.push_back(Mutation{f[1], f[3], f[2] == "1"});
    } else if (f[0] == "phase" && f.size() >= 2) {
      log.phase = f[1];
    } else if (f[0] == "finding" && f.size() >= 3) {
      std::vector<std::string> g = fields(line, 3);
      log.findings.push_back(Finding{g[1], g[2]});
    } else if (f[0] == "outcome" && f.size() >= 2) {
      decode(line.substr(8), &log.outcome);
    } else if (f[0] == "done") {
      log.done = true;
    }
  }
  return log;
}

}  // namespace pagefs::fuzz
