// Read-only memory-mapped files. Weights stay in the page cache and are shared by every
// session; nothing is copied unless a format forces a conversion.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kite {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws kite::Error naming the path on failure.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's pages of [p, p + n) (whole pages inside it, and only if the range lies
  // in this mapping): resident memory goes down; a later read maps them again from the file.
  void drop_pages(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string. Throws kite::Error naming the path on failure.
std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace kite
