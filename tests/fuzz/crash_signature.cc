// crash_signature() and output_excerpt(): naming a child's death from its
// output (see runner.h).
#include <cxxabi.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/runner.h"

namespace pagefs::fuzz {
namespace {

constexpr size_t kExcerptLines = 30;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Paths relative to the source tree, so signatures match across checkouts:
// "/work/x/engine/node.cc:49" becomes "engine/node.cc:49".
std::string strip_root(std::string s) {
  for (const char* marker : {"/engine/", "/fsck/", "/tests/", "/fs/"}) {
    for (size_t at; (at = s.find(marker)) != std::string::npos;) {
      size_t start = s.find_last_of(" (:", at);
      start = start == std::string::npos ? 0 : start + 1;
      s.erase(start, at + 1 - start);
    }
  }
  return s;
}

std::string demangle(const std::string& name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

// The function without its parameter list.
std::string short_function(std::string f) {
  size_t paren = f.find('(');
  return paren == std::string::npos ? f : f.substr(0, paren);
}

// One frame of an ASan/UBSan stack, "#3 0x55d0 in f(...) /src/engine/x.cc:236:5",
// as "f engine/x.cc:236" if it is engine or checker code.
std::optional<std::string> sanitizer_frame(const std::string& l) {
  size_t hash = l.find_first_not_of(' '), in = l.find(" in "), space = l.rfind(' ');
  if (hash == std::string::npos || l[hash] != '#' || in == std::string::npos || space <= in) {
    return std::nullopt;
  }
  std::string file = strip_root(l.substr(space + 1));
  if (std::count(file.begin(), file.end(), ':') == 2) file.resize(file.rfind(':'));
  if (!file.starts_with("engine/") && !file.starts_with("fsck/")) return std::nullopt;
  return short_function(l.substr(in + 4, space - in - 4)) + " " + file;
}

// One frame of the child's own backtrace, "prog(_ZN6pagefs...+0x1f)[0x...]", as
// the function's name if it is engine or checker code.
std::optional<std::string> backtrace_frame(const std::string& l) {
  size_t open = l.find("(_Z");
  size_t plus = l.find('+', open);
  if (open == std::string::npos || plus == std::string::npos) return std::nullopt;
  std::string f = short_function(demangle(l.substr(open + 1, plus - open - 1)));
  if (!f.starts_with("pagefs::") || f.starts_with("pagefs::fuzz::")) return std::nullopt;
  return f;
}

// Where a stack that starts at line `from` died: " in" its innermost engine
// frame, or, when one function fills most of the stack (a recursion that
// followed a cycle), " (stack overflow) in" that function.
std::string where(const std::vector<std::string>& lines, size_t from) {
  constexpr int kRecursion = 8;
  std::vector<std::string> frames;
  std::map<std::string, int> calls;
  for (size_t i = from; i < lines.size(); i++) {
    auto f = sanitizer_frame(lines[i]);
    if (!f) f = backtrace_frame(lines[i]);
    if (!f) continue;
    frames.push_back(*f);
    std::string function = f->substr(0, f->find(' '));
    if (++calls[function] >= kRecursion) return " (stack overflow) in " + function;
  }
  return frames.empty() ? "" : " in " + frames.front();
}

// Numbers (addresses, sizes, indexes) vary from image to image: "N".
std::string digits_to_n(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      out += s[i++];
      continue;
    }
    bool hex = s.compare(i, 2, "0x") == 0;
    if (hex) i += 2;
    auto digit = [&](char c) { return hex ? std::isxdigit(uint8_t(c)) : std::isdigit(uint8_t(c)); };
    while (i < s.size() && digit(s[i])) i++;
    out += 'N';
  }
  return out;
}

// The sanitizer's or the runtime's own words, if it said anything.
std::string reported(const std::vector<std::string>& lines) {
  for (size_t i = 0; i < lines.size(); i++) {
    const std::string& l = lines[i];
    if (size_t at = l.find("Assertion `"); at != std::string::npos) {
      size_t file = l.find(": ");
      return "assertion " + strip_root(file == std::string::npos ? l : l.substr(file + 2));
    }
    if (l.find("terminate called after throwing") != std::string::npos) {
      std::string what = i + 1 < lines.size() ? lines[i + 1] : "";
      return "uncaught " + l.substr(l.find("instance of") + 12) + " " + what;
    }
    if (size_t at = l.find("runtime error: "); at != std::string::npos) {
      return "ubsan " + strip_root(l.substr(0, at)) + digits_to_n(l.substr(at + 15));
    }
    if (size_t at = l.find("ERROR: AddressSanitizer: "); at != std::string::npos) {
      std::string kind = l.substr(at + 25);
      kind = kind.substr(0, kind.find(" on "));
      return "asan " + kind + where(lines, i);
    }
  }
  return "";
}

}  // namespace

std::string crash_signature(const ChildResult& r) {
  std::vector<std::string> lines = lines_of(r.output);
  if (r.timed_out) return "hang (watchdog) in phase " + r.log.phase;
  std::string words = reported(lines);
  if (!words.empty()) return words;
  if (r.signal != 0) {
    size_t from = 0;
    for (size_t i = 0; i < lines.size(); i++) {
      if (lines[i].find("fatal signal, backtrace") != std::string::npos) from = i;
    }
    return std::string(sigabbrev_np(r.signal) ? sigabbrev_np(r.signal) : "signal") +
           where(lines, from) + " in phase " + r.log.phase;
  }
  return "exit " + std::to_string(r.exit_code) + " in phase " + r.log.phase;
}

std::string output_excerpt(const std::string& output) {
  std::vector<std::string> lines = lines_of(output);
  size_t from = lines.size() > kExcerptLines ? lines.size() - kExcerptLines : 0;
  for (size_t i = 0; i < lines.size(); i++) {
    const std::string& l = lines[i];
    if (l.find("ERROR: AddressSanitizer") != std::string::npos ||
        l.find("runtime error:") != std::string::npos ||
        l.find("Assertion `") != std::string::npos ||
        l.find("terminate called") != std::string::npos) {
      from = i > 3 ? i - 3 : 0;
      break;
    }
  }
  std::string out;
  for (size_t i = from; i < lines.size() && i < from + kExcerptLines; i++) {
    out += "    | " + lines[i] + "\n";
  }
  return out;
}

}  // namespace pagefs::fuzz
