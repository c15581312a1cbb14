// Per-test scratch directories and small file helpers.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace df::test {

// A fresh empty directory under the system temp dir, removed with its
// contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `text` to `name` (creating parent dirs) and returns its path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
// Names of the regular files in `dir`, sorted (hidden ones included).
std::vector<std::string> list_dir(const std::filesystem::path& dir);
// The lines of every committed part file of a file sink's directory (names
// without a leading '.' or '_'), sorted; empty when `dir` does not exist.
std::vector<std::string> committed_rows(const std::filesystem::path& dir);

}  // namespace df::test
