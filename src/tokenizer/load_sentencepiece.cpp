// tokenizer.model: SentencePiece's ModelProto, read with a minimal protobuf wire-format parser
// (no protobuf dependency). Fields used (sentencepiece_model.proto):
//   ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
//   SentencePiece   1: piece (string)   2: score (float)   3: type (enum, NORMAL=1 .. BYTE=6)
//   TrainerSpec     3: model_type (1 UNIGRAM, 2 BPE)   35: byte_fallback
//                   40: unk_id   41: bos_id   42: eos_id   43: pad_id
//   NormalizerSpec  1: name   3: add_dummy_prefix   4: remove_extra_whitespaces
// Everything else is skipped by wire type. Every length is checked against the bytes left.
#include <cstring>

#include "core/error.h"
#include "core/mmap.h"
#include "tokenizer/tokenizer_impl.h"

namespace kite {

namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class ProtoReader {
 public:
  ProtoReader(const uint8_t* p, size_t n, const std::string& file, const char* msg)
      : p_(p), end_(p + n), base_(p), file_(file), msg_(msg) {}

  bool done() const { return p_ >= end_; }

  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) error("truncated varint in ", what);
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    error("varint longer than 10 bytes in ", what);
  }

  // Reads a field tag; returns the field number and sets the wire type.
  uint32_t tag(int& wire) {
    const uint64_t t = varint("field tag");
    wire = static_cast<int>(t & 7);
    const uint64_t field = t >> 3;
    if (field == 0 || field > 0x1FFFFFFF) error("invalid field number ", field);
    return static_cast<uint32_t>(field);
  }

  std::string_view bytes(const char* what) {
    const uint64_t n = varint(what);
    if (n > static_cast<uint64_t>(end_ - p_))
      error(what, " of ", n, " bytes runs past the end (", end_ - p_, " bytes left)");
    std::string_view s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }

  float f32(const char* what) {
    if (end_ - p_ < 4) error("truncated float in ", what);
    float f;
    std::memcpy(&f, p_, 4);
    p_ += 4;
    return f;
  }

  void expect(int wire, int want, uint32_t field) {
    if (wire != want) error("field ", field, " has wire type ", wire, ", expected ", want);
  }

  void skip(int wire, uint32_t field) {
    switch (wire) {
      case kVarint: varint("skipped field"); return;
      case kFixed64: advance(8, field); return;
      case kFixed32: advance(4, field); return;
      case kLen: bytes("skipped field"); return;
      default: error("field ", field, " has unsupported wire type ", wire);
    }
  }

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail(file_, ": ", msg_, " (offset ", p_ - base_, "): ", args...);
  }

 private:
  void advance(size_t n, uint32_t field) {
    if (static_cast<size_t>(end_ - p_) < n) error("truncated field ", field);
    p_ += n;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* base_;
  const std::string& file_;
  const char* msg_;
};

ProtoReader sub(std::string_view s, const std::string& file, const char* msg) {
  return ProtoReader(reinterpret_cast<const uint8_t*>(s.data()), s.size(), file, msg);
}

// int32 fields are sign-extended to 64 bits on the wire.
int64_t as_int32(uint64_t v) { return static_cast<int64_t>(v); }

}  // namespace

namespace tok {

VocabData load_sentencepiece_model(const std::string& path) {
  auto file = MappedFile::open(path);
  VocabData v;
  v.type = VocabType::SPM;
  v.source = path;
  int64_t model_type = 1;  // proto default: UNIGRAM
  int64_t unk = 0, bos = 1, eos = 2, pad = -1;
  bool byte_fallback = false;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true;  // proto defaults
  std::string normalizer = "(none)";

  ProtoReader top(file->data(), file->size(), path, "ModelProto");
  while (!top.done()) {
    int wire = 0;
    const uint32_t field = top.tag(wire);
    if (field == 1) {
      top.expect(wire, kLen, field);
      ProtoReader pr = sub(top.bytes("piece"), path, "SentencePiece");
      std::string piece;
      float score = 0;
      int64_t type = 1;
      while (!pr.done()) {
        int w = 0;
        const uint32_t f = pr.tag(w);
        if (f == 1) {
          pr.expect(w, kLen, f);
          piece = std::string(pr.bytes("piece text"));
        } else if (f == 2) {
          pr.expect(w, kFixed32, f);
          score = pr.f32("score");
        } else if (f == 3) {
          pr.expect(w, kVarint, f);
          type = as_int32(pr.varint("type"));
        } else {
          pr.skip(w, f);
        }
      }
      check(type >= 1 && type <= 6, path, ": piece ", v.tokens.size(), " '", piece, "' has type ", type,
            " (valid: 1..6)");
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      v.token_types.push_back(static_cast<TokenType>(type));
    } else if (field == 2) {
      top.expect(wire, kLen, field);
      ProtoReader tr = sub(top.bytes("trainer_spec"), path, "TrainerSpec");
      while (!tr.done()) {
        int w = 0;
        const uint32_t f = tr.tag(w);
        int64_t* target = f == 3 ? &model_type : f == 40 ? &unk : f == 41 ? &bos : f == 42 ? &eos : f == 43 ? &pad : nullptr;
        if (target) {
          tr.expect(w, kVarint, f);
          *target = as_int32(tr.varint("trainer_spec field"));
        } else if (f == 35) {
          tr.expect(w, kVarint, f);
          byte_fallback = tr.varint("byte_fallback") != 0;
        } else {
          tr.skip(w, f);
        }
      }
    } else if (field == 3) {
      top.expect(wire, kLen, field);
      ProtoReader nr = sub(top.bytes("normalizer_spec"), path, "NormalizerSpec");
      while (!nr.done()) {
        int w = 0;
        const uint32_t f = nr.tag(w);
        if (f == 1) {
          nr.expect(w, kLen, f);
          normalizer = std::string(nr.bytes("name"));
        } else if (f == 3 || f == 4) {
          nr.expect(w, kVarint, f);
          (f == 3 ? add_dummy_prefix : remove_extra_whitespaces) = nr.varint("normalizer flag") != 0;
        } else {
          nr.skip(w, f);
        }
      }
    } else {
      top.skip(wire, field);
    }
  }

  check(!v.tokens.empty(), path, ": no pieces (field 1 of ModelProto): not a SentencePiece model");
  check(model_type == 2, path, ": trainer_spec.model_type is ", model_type,
        " but only BPE (2) models are supported (1 = UNIGRAM, 3 = WORD, 4 = CHAR)");
  const auto n = static_cast<int64_t>(v.tokens.size());
  const auto id_field = [&](int64_t id, const char* name) -> int32_t {
    if (id < 0) return -1;
    check(id < n, path, ": trainer_spec.", name, " = ", id, " is out of range (", n, " pieces)");
    return static_cast<int32_t>(id);
  };
  v.unk = id_field(unk, "unk_id");
  v.bos = id_field(bos, "bos_id");
  v.eos = id_field(eos, "eos_id");
  v.pad = id_field(pad, "pad_id");
  // SentencePiece itself never adds BOS; Llama-family models expect it (HF LlamaTokenizer).
  v.add_bos = v.bos >= 0;
  v.add_space_prefix = add_dummy_prefix;
  v.remove_extra_whitespaces = remove_extra_whitespaces;
  v.byte_fallback = byte_fallback;
  (void)normalizer;  // only "identity"-like normalizers are reproduced (no NFKC tables)
  return v;
}

}  // namespace tok

Tokenizer Tokenizer::from_sentencepiece_model(const std::string& path) {
  return Tokenizer(tok::load_sentencepiece_model(path));
}

}  // namespace kite
