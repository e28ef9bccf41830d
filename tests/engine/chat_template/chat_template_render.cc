// File: tests/engine/chat_template/chat_template_render.cc
// Test helper (no gtest): reads a JSON array of cases {"template", "context", "now"?} on stdin and
// writes a JSON array of {"ok", "text"} / {"ok": false, "error"} so a Python test can compare our
// renderer with transformers' in one process.
#include <iostream>
#include <iterator>
#include <string>

#include "engine/chat_template/chat_template.h"
#include "nlohmann/json.hpp"

int main() {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  nlohmann::ordered_json cases;
  try {
    cases = nlohmann::ordered_json::parse(input);
  } catch (const nlohmann::json::exception& e) {
    std::cerr << "chat_template_render: stdin is not JSON: " << e.what() << "\n";
    return 2;
  }
  if (!cases.is_array()) {
    std::cerr << "chat_template_render: expected a JSON array of cases\n";
    return 2;
  }
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const auto& c : cases) {
    nlohmann::ordered_json r;
    auto tmpl = lil::ChatTemplate::Parse(c.value("template", ""));
    if (!tmpl.ok()) {
      r["ok"] = false;
      r["error"] = std::string(tmpl.status().message());
      results.push_back(r);
      continue;
    }
    lil::ChatRenderOptions options;
    if (c.contains("now")) options.now_unix_seconds = c["now"].get<int64_t>();
    auto text = tmpl->Render(c.value("context", nlohmann::ordered_json::object()), options);
    if (text.ok()) {
      r["ok"] = true;
      r["text"] = *text;
    } else {
      r["ok"] = false;
      r["error"] = std::string(text.status().message());
    }
    results.push_back(r);
  }
  std::cout << results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}
