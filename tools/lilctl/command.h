// File: tools/lilctl/command.h
// lilctl's subcommands register themselves: each tools/lilctl/*_cmd.cc defines one static
// CommandRegistrar that adds its CLI11 subcommand. A subcommand's callback reports failure by
// throwing CLI::RuntimeError(exit_code) after printing a clear message to stderr.
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace lil::ctl {

using CommandSetup = std::function<void(CLI::App& app)>;

std::vector<CommandSetup>& Commands();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup setup) { Commands().push_back(std::move(setup)); }
};

}  // namespace lil::ctl
