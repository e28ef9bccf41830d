// File: common/log.h
// Logging goes through spdlog (Abseil 20220623 has no absl/log). One default logger,
// writing to stderr; LIL_LOG_* take fmt-style format strings.
#pragma once

#include <spdlog/spdlog.h>

#define LIL_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define LIL_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LIL_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LIL_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
