// File: tools/lilctl/main.cc
// lilctl: the lilserve command-line tool (in-process generation, tokenizer, model and
// monitor utilities; later the gRPC client). Subcommands live in *_cmd.cc files.
#include <cstdio>

#include "engine/runtime_env.h"
#include "tools/lilctl/command.h"

namespace lil::ctl {
std::vector<CommandSetup>& Commands() {
  static std::vector<CommandSetup> commands;
  return commands;
}
}  // namespace lil::ctl

int main(int argc, char** argv) {
  lil::EnsurePassiveOpenMp(argv);
  CLI::App app{"lilctl: lilserve command-line tool"};
  app.require_subcommand(1);
  for (auto& setup : lil::ctl::Commands()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
