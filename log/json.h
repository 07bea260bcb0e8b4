// json.h: JSON text for fanprobe's log lines.  Strings are escaped as
// RFC 8259 says, so a line parses with any JSON parser (Python's json.loads,
// jq, a log shipper) whatever bytes a file name, a peer address or an error
// message holds.  absl::CEscape is C escaping, not JSON: it writes \' and
// octal escapes (\303) that JSON parsers reject.
//
// Example:
//   std::string out = "{\"path\":";
//   fanprobe::log::AppendJsonString("tok'\xc3\xa9", &out);  // "tok'é"
//   out += "}";
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_LOG_JSON_H_
#define FANPROBE_LOG_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fanprobe::log {

// Appends `text` to `out` as a JSON string literal, quotes included.  '"'
// and '\' are escaped, control characters (U+0000 to U+001F) become \n, \t,
// ... or \u00XX, and valid UTF-8 passes through as it is.  A byte that is
// not part of valid UTF-8 (a stray continuation byte, an overlong form, an
// encoded surrogate, a sequence cut short) becomes \u00XX: the output is
// always valid UTF-8, and the byte's value stays readable.
void AppendJsonString(absl::string_view text, std::string* out);

// The same, returned.
std::string JsonString(absl::string_view text);

}  // namespace fanprobe::log

#endif  // FANPROBE_LOG_JSON_H_
