// File: engine/runtime_env.h
// Process-level settings the CPU backend needs before any thread starts. OpenMP (libgomp)
// reads OMP_WAIT_POLICY once, when the library loads; its default (spin before sleeping)
// makes every parallel region wait for a descheduled thread when the cores are shared
// (measured: decode 3.6 tok/s spinning vs 25.6 tok/s passive with other work on the
// cores). Binaries call EnsurePassiveOpenMp first thing in main().
#pragma once

namespace lil {

// If OMP_WAIT_POLICY is unset, sets it to "passive" and re-executes the binary with the same
// arguments (no-op when it is already set, e.g. by an operator who wants "active").
void EnsurePassiveOpenMp(char** argv);

}  // namespace lil
