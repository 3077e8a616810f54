// Hugging Face safetensors reader: a single `model.safetensors` or shards listed by
// `model.safetensors.index.json`. Files are memory-mapped; tensors are views into them.
// Shapes are converted to GGUF order (ne[0] = innermost), so an HF Linear weight [out, in]
// becomes ne = {in, out}.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace kite {

class SafeTensors {
 public:
  // Opens one .safetensors file.
  static std::unique_ptr<SafeTensors> open_file(const std::string& path);
  // Opens an HF folder: model.safetensors, or the shards named by model.safetensors.index.json.
  static std::unique_ptr<SafeTensors> open_dir(const std::string& dir);

  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const Tensor* find(const std::string& name) const;
  const std::vector<std::shared_ptr<MappedFile>>& files() const { return files_; }
  // The "__metadata__" object of the (first) header, as string pairs.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void add_file(const std::string& path);
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace kite
