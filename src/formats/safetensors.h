// Hugging Face safetensors reader: a single `model.safetensors` or shards listed by
// `model.safetensors.index.json`. Files are memory-mapped; tensors are views into them.
// Shapes are converted to GGUF order (ne[0] = innermost), so an HF Linear weight [out, in]
// becomes ne = {in, out}.
//
// dtypes: F32/F16/BF16 (computable) and I8/I16/I32/I64/F64 (kept with their non-computable DType)
// appear in tensors(). Other valid safetensors dtypes (U8, BOOL, F8_*, ...) are bounds-checked,
// left out of tensors() and listed in unsupported(); require() names their dtype. Unknown dtype
// strings are an error. Data pointers are not guaranteed to be aligned to the element size
// (the format does not require it; files from the official writer are aligned).
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
  // The tensor, or a kite::Error naming the folder/file and the tensor (and its dtype when it
  // is one Kite cannot load).
  const Tensor& require(const std::string& name) const;
  // Tensors present but of a dtype Kite does not map (name -> safetensors dtype string).
  const std::map<std::string, std::string>& unsupported() const { return unsupported_; }
  const std::vector<std::shared_ptr<MappedFile>>& files() const { return files_; }
  // The "__metadata__" object of the (first) header, as string pairs.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void add_file(const std::string& path);
  void add_file_checked(const std::string& path);
  static void open_index(SafeTensors& st, const std::string& dir, const std::string& index);
  std::string source_;  // the file or folder opened, for messages
  std::map<std::string, std::string> unsupported_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace kite
