// llama2.c checkpoint reader. The weight order of each version is written down once, as a list
// of segments; the same list gives the expected file size (checked before anything is mapped
// to a tensor) and the tensor views.
#include "formats/llama2c.h"

#include <climits>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "formats/byte_reader.h"

namespace kite {

namespace {

constexpr uint32_t kMagicV1 = 0x616b3432;  // "ak42"
constexpr uint64_t kV0HeaderBytes = 7 * 4;
constexpr uint64_t kV1HeaderBytes = 256;

struct Params {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// A run of float32 data in the file: `per_layer` repeats it once per layer as
// blk.{i}.<name>; an empty name marks data to skip (legacy RoPE tables).
struct Segment {
  std::string name;
  int64_t ne0, ne1;  // ne1 == 0: a vector of ne0
  bool per_layer;
};

std::vector<Segment> legacy_layout(const Params& p, bool shared) {
  const int64_t hs = p.dim / p.n_heads, q_dim = int64_t(p.n_heads) * hs,
                kv_dim = int64_t(p.n_kv_heads) * hs;
  const int64_t vocab = p.vocab_size < 0 ? -int64_t(p.vocab_size) : p.vocab_size;
  std::vector<Segment> s = {
      {"token_embd.weight", p.dim, vocab, false},
      {"attn_norm.weight", p.dim, 0, true},
      {"attn_q.weight", p.dim, q_dim, true},
      {"attn_k.weight", p.dim, kv_dim, true},
      {"attn_v.weight", p.dim, kv_dim, true},
      {"attn_output.weight", q_dim, p.dim, true},
      {"ffn_norm.weight", p.dim, 0, true},
      {"ffn_gate.weight", p.dim, p.hidden_dim, true},   // w1
      {"ffn_down.weight", p.hidden_dim, p.dim, true},   // w2
      {"ffn_up.weight", p.dim, p.hidden_dim, true},     // w3
      {"output_norm.weight", p.dim, 0, false},
      {"", hs / 2, p.seq_len, false},                   // freq_cis_real [seq_len][hs/2]
      {"", hs / 2, p.seq_len, false},                   // freq_cis_imag
  };
  if (!shared) s.push_back({"output.weight", p.dim, vocab, false});
  return s;
}

std::vector<Segment> v1_layout(const Params& p, bool shared) {
  const int64_t hs = p.dim / p.n_heads, q_dim = int64_t(p.n_heads) * hs,
                kv_dim = int64_t(p.n_kv_heads) * hs;
  std::vector<Segment> s = {
      {"attn_norm.weight", p.dim, 0, true},
      {"ffn_norm.weight", p.dim, 0, true},
      {"output_norm.weight", p.dim, 0, false},
      {"token_embd.weight", p.dim, p.vocab_size, false},
      {"attn_q.weight", p.dim, q_dim, true},
      {"attn_k.weight", p.dim, kv_dim, true},
      {"attn_v.weight", p.dim, kv_dim, true},
      {"attn_output.weight", q_dim, p.dim, true},
      {"ffn_gate.weight", p.dim, p.hidden_dim, true},
      {"ffn_down.weight", p.hidden_dim, p.dim, true},
      {"ffn_up.weight", p.dim, p.hidden_dim, true},
  };
  if (!shared) s.push_back({"output.weight", p.dim, p.vocab_size, false});
  return s;
}

// Bytes the segments take, or false when that overflows.
bool layout_bytes(const std::vector<Segment>& segs, int n_layers, uint64_t* out) {
  uint64_t total = 0;
  for (const Segment& s : segs) {
    uint64_t n = 0;
    if (!checked_mul(uint64_t(s.ne0), uint64_t(s.ne1 ? s.ne1 : 1), &n) ||
        !checked_mul(n, s.per_layer ? uint64_t(n_layers) : 1, &n) || !checked_mul(n, 4, &n) ||
        !checked_add(total, n, &total))
      return false;
  }
  *out = total;
  return true;
}

std::string describe(const Params& p) {
  std::ostringstream os;
  os << "dim " << p.dim << ", hidden_dim " << p.hidden_dim << ", n_layers " << p.n_layers
     << ", n_heads " << p.n_heads << ", n_kv_heads " << p.n_kv_heads << ", vocab_size "
     << p.vocab_size << ", seq_len " << p.seq_len;
  return os.str();
}

void validate(const std::string& path, const Params& p, int version) {
  auto positive = [&](const char* field, int32_t v) {
    if (v <= 0) fail(path, ": llama2.c header: ", field, " = ", v, " must be positive");
  };
  positive("dim", p.dim);
  positive("hidden_dim", p.hidden_dim);
  positive("n_layers", p.n_layers);
  positive("n_heads", p.n_heads);
  positive("n_kv_heads", p.n_kv_heads);
  positive("seq_len", p.seq_len);
  if (version == 1) positive("vocab_size", p.vocab_size);
  if (p.vocab_size == 0 || p.vocab_size == INT32_MIN)
    fail(path, ": llama2.c header: vocab_size = ", p.vocab_size, " is invalid");
  if (p.dim % p.n_heads != 0)
    fail(path, ": llama2.c header: dim ", p.dim, " is not a multiple of n_heads ", p.n_heads);
  if (p.n_heads % p.n_kv_heads != 0)
    fail(path, ": llama2.c header: n_heads ", p.n_heads, " is not a multiple of n_kv_heads ",
         p.n_kv_heads);
  if ((p.dim / p.n_heads) % 2 != 0)
    fail(path, ": llama2.c header: head size ", p.dim / p.n_heads, " must be even for RoPE");
}

ModelConfig make_config(const std::string& path, const Params& p, bool shared) {
  ModelConfig c;
  c.arch = "llama";
  c.name = std::filesystem::path(path).stem().string();
  c.n_vocab = p.vocab_size < 0 ? -p.vocab_size : p.vocab_size;
  c.n_embd = p.dim;
  c.n_layer = p.n_layers;
  c.n_head = p.n_heads;
  c.n_head_kv = p.n_kv_heads;
  c.head_dim = p.dim / p.n_heads;
  c.n_ff = p.hidden_dim;
  c.n_ctx_train = p.seq_len;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_dim = c.head_dim;
  c.rope_style = RopeStyle::Interleaved;  // run.c rotates pairs (2i, 2i+1)
  c.rope_scaling = RopeScaling::None;
  c.attn_bias = false;
  c.tied_embeddings = shared;
  return c;
}

Tensor view(const std::string& name, int64_t ne0, int64_t ne1, const uint8_t* data) {
  Tensor t;
  t.name = name;
  t.type = DType::F32;
  t.n_dims = ne1 ? 2 : 1;
  t.ne = {ne0, ne1 ? ne1 : 1, 1, 1};
  t.data = data;
  t.nbytes = static_cast<size_t>(ne0 * t.ne[1] * 4);
  return t;
}

}  // namespace

Llama2cCheckpoint load_llama2c(const std::string& path) {
  Llama2cCheckpoint ck;
  ck.file = MappedFile::open(path);
  ByteReader r(ck.file->data(), ck.file->size(), path);

  uint64_t header_bytes = kV0HeaderBytes;
  bool shared = true;
  if (r.size() >= 4 && r.read<uint32_t>("magic") == kMagicV1) {
    const int32_t version = r.read<int32_t>("version");
    if (version != 1)
      fail(path, ": llama2.c checkpoint version ", version,
           " is not supported (only float32 versions 0 and 1)");
    ck.version = 1;
    header_bytes = kV1HeaderBytes;
  } else {
    r = ByteReader(ck.file->data(), ck.file->size(), path);  // legacy: no magic, rewind
  }
  r.set_context("llama2.c header");
  Params p;
  p.dim = r.read<int32_t>("dim");
  p.hidden_dim = r.read<int32_t>("hidden_dim");
  p.n_layers = r.read<int32_t>("n_layers");
  p.n_heads = r.read<int32_t>("n_heads");
  p.n_kv_heads = r.read<int32_t>("n_kv_heads");
  p.vocab_size = r.read<int32_t>("vocab_size");
  p.seq_len = r.read<int32_t>("seq_len");
  if (ck.version == 1) {
    shared = r.read<uint8_t>("shared_classifier flag") != 0;
    r.need(header_bytes - r.pos(), "header padding");
  } else {
    shared = p.vocab_size > 0;  // legacy: the sign of vocab_size is the flag
  }
  validate(path, p, ck.version);

  const std::vector<Segment> segs =
      ck.version == 1 ? v1_layout(p, shared) : legacy_layout(p, shared);
  uint64_t weights = 0, total = 0;
  if (!layout_bytes(segs, p.n_layers, &weights) || !checked_add(weights, header_bytes, &total) ||
      total != ck.file->size()) {
    std::string hint;
    uint64_t other = 0;
    const std::vector<Segment> alt = ck.version == 1 ? v1_layout(p, !shared)
                                                     : legacy_layout(p, !shared);
    if (layout_bytes(alt, p.n_layers, &other) && other + header_bytes == ck.file->size())
      hint = shared ? " (the size fits a separate classifier: wrong sign or flag?)"
                    : " (the size fits a shared classifier: wrong sign or flag?)";
    fail(path, ": llama2.c v", ck.version, " header (", describe(p), ") implies ",
         total == 0 ? std::string("an impossibly large file") : std::to_string(total) + " bytes",
         shared ? " with a shared classifier" : " with a separate classifier",
         ", but the file has ", ck.file->size(), " bytes", hint);
  }

  const uint8_t* pos = ck.file->data() + header_bytes;
  for (const Segment& s : segs) {
    const uint64_t bytes = uint64_t(s.ne0) * uint64_t(s.ne1 ? s.ne1 : 1) * 4;
    const int reps = s.per_layer ? p.n_layers : 1;
    for (int l = 0; l < reps; l++, pos += bytes) {
      if (s.name.empty()) continue;
      const std::string name = s.per_layer ? "blk." + std::to_string(l) + "." + s.name : s.name;
      ck.tensors[name] = view(name, s.ne0, s.ne1, pos);
    }
  }
  ck.config = make_config(path, p, shared);
  return ck;
}

}  // namespace kite
