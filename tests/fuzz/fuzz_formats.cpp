// libFuzzer target for every model-file reader (clang only; built when KITE_FUZZ is ON).
// The first input byte picks the reader, the rest is the file. Each input must load or throw
// kite::Error; anything else (crash, sanitizer report, other exception) is a finding.
//
//   build/kite_fuzz_formats -max_total_time=600 corpus/
// Seed corpus suggestion: a byte 0x00 + stories260K.gguf, 0x01 + a small .safetensors,
// 0x02 + stories260K.bin, 0x03 + a config.json.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"

namespace {

// The readers take paths: inputs go through one scratch file per process (tmpfs if present).
// It is removed after each input (libFuzzer may leave through _Exit, skipping atexit).
const std::string& scratch_path() {
  static const std::string p =
      (std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                 : std::filesystem::temp_directory_path())
          .string() +
      "/kite_fuzz_formats_" + std::to_string(getpid()) + ".bin";
  return p;
}

struct RemoveScratch {
  ~RemoveScratch() { std::remove(scratch_path().c_str()); }
};

bool write_scratch(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(scratch_path().c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

// Reads every byte a view claims, so a view outside the mapping faults here.
uint8_t touch(const kite::Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data);
  uint8_t x = 0;
  for (size_t i = 0; i < t.nbytes; i += 4096) x ^= p[i];
  return t.nbytes ? uint8_t(x ^ p[t.nbytes - 1]) : x;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 4;
  data++;
  size--;
  volatile uint8_t sink = 0;
  try {
    if (mode == 3) {
      kite::parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "config.json");
      return 0;
    }
    const RemoveScratch cleanup;
    if (!write_scratch(data, size)) return 0;
    if (mode == 0) {
      auto g = kite::GGUFFile::open(scratch_path());
      for (const kite::Tensor& t : g->tensors()) sink = sink ^ touch(t);
    } else if (mode == 1) {
      auto st = kite::SafeTensors::open_file(scratch_path());
      for (const auto& [name, t] : st->tensors()) sink = sink ^ touch(t);
    } else {
      kite::Llama2cCheckpoint ck = kite::load_llama2c(scratch_path());
      for (const auto& [name, t] : ck.tensors) sink = sink ^ touch(t);
    }
  } catch (const kite::Error&) {
    // Rejected cleanly: the expected outcome for almost every input.
  }
  return 0;
}
