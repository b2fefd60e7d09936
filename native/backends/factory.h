// The backend table: every implementation's name, probe, constructor and option keys, in one
// place. The addon builds backends from it and hands it to TypeScript (addon.backends()), whose
// registry (src/impl/registry.ts) is checked against it by test/impl-table.test.ts.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace async_engine {

// What a backend is built with: the drive, and the numeric options of its table row, by key
// (checked by TypeScript, src/impl/<name>/index.ts).
struct BackendOptions {
  bool manualDrive = false;
  std::vector<std::pair<std::string, int>> values;

  // The option `key`, or `dflt` when it was not given.
  int get(const char* key, int dflt) const {
    for (const auto& [k, v] : values) {
      if (k == key) return v;
    }
    return dflt;
  }
};

// One implementation.
struct BackendEntry {
  const char* name;
  // "" when it can run on this machine, else the reason it cannot.
  std::string (*probe)();
  // nullptr and *error (-errno) when it cannot be built.
  std::unique_ptr<Backend> (*make)(Sink* sink, const BackendOptions& options, int* error);
  // The keys of its options (config.<name>.<key> in TypeScript).
  std::vector<std::string> optionKeys;
};

const std::vector<BackendEntry>& backendTable();

// The row of `impl`, or nullptr.
const BackendEntry* findBackend(const std::string& impl);

// Builds the backend of `impl`; nullptr and *error (-errno) when it cannot be built.
std::unique_ptr<Backend> makeBackend(const std::string& impl, Sink* sink, const BackendOptions& options, int* error);

// "" when `impl` can run on this machine, else the reason it cannot.
std::string probeBackend(const std::string& impl);

}  // namespace async_engine
