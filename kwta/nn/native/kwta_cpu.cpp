// Exact k-WTA on the CPU in one fused kernel (Sec. 2.1 of Xiao, Zhong, Zheng, ICLR 2020).
//
// Per sample (row of N = C*H*W values, in memory order, NCHW or channels-last):
//   1. map every value to an order-preserving 32-bit key (-0.0 == +0.0, as torch compares);
//   2. radix select: a 2048-bin histogram of the top 11 key bits finds the bin of the k-th
//      largest value; a second pass collects that bin's values, and nth_element over them
//      gives the exact k-th largest key T;
//   3. one output pass writes y = x where key > T, else 0, and the winner mask; the values
//      tied with T are all in the collected bin, so the ties kept (the lowest flat indices in
//      C*H*W order, Sec. 2.1) are chosen there, whatever the memory layout.
// Rows run in parallel (at::parallel_for). The backward pass is grad * mask.
// Optional: kwta/nn/native.py compiles this on first use and falls back to pure PyTorch.

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

// Branch-free, so the passes vectorise and random signs cost no mispredictions.
inline uint32_t key_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  u = (u == 0x80000000u) ? 0u : u;  // -0.0 ties with +0.0
  const uint32_t neg = static_cast<uint32_t>(static_cast<int32_t>(u) >> 31);  // all ones if < 0
  return u ^ (neg | 0x80000000u);
}

// v where keep, else +0, by masking the bits (vectorises; no branch, no float compare).
template <typename T>
inline T keep_or_zero(T v, bool keep) {
  using bits_t = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;
  static_assert(sizeof(T) == sizeof(bits_t), "float32, bfloat16 or float16 only");
  bits_t b;
  std::memcpy(&b, &v, sizeof(b));
  b &= static_cast<bits_t>(-static_cast<bits_t>(keep));
  T out;
  std::memcpy(&out, &b, sizeof(out));
  return out;
}

struct Cand {
  uint32_t key;
  int64_t mem;  // index in memory order within the row
};

template <typename scalar_t>
void kwta_rows(const scalar_t* x, scalar_t* y, bool* mask, int64_t rows, int64_t n, int64_t k,
               int64_t channels, int64_t hw, bool channels_last) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<Cand> cand;
    std::vector<int64_t> tied_flat;
    uint32_t hist[2][2048];  // two interleaved histograms: shorter store-to-load chains
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* xr = x + r * n;
      scalar_t* yr = y + r * n;
      bool* mr = mask + r * n;
      if (k >= n) {
        for (int64_t i = 0; i < n; ++i) {
          yr[i] = xr[i];
          mr[i] = true;
        }
        continue;
      }
      std::memset(hist, 0, sizeof(hist));
      int64_t i0 = 0;
      for (; i0 + 1 < n; i0 += 2) {
        hist[0][key_of(static_cast<float>(xr[i0])) >> 21]++;
        hist[1][key_of(static_cast<float>(xr[i0 + 1])) >> 21]++;
      }
      if (i0 < n) hist[0][key_of(static_cast<float>(xr[i0])) >> 21]++;
      int64_t above = 0;  // values in bins above the k-th value's bin
      int bin = 2047;
      for (; bin > 0; --bin) {
        const int64_t in_bin = static_cast<int64_t>(hist[0][bin]) + hist[1][bin];
        if (above + in_bin >= k) break;
        above += in_bin;
      }
      cand.clear();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t key = key_of(static_cast<float>(xr[i]));
        if (static_cast<int>(key >> 21) == bin) cand.push_back({key, i});
      }
      const int64_t need_in_bin = k - above;  // 1 <= need_in_bin <= cand.size()
      std::nth_element(cand.begin(), cand.begin() + (need_in_bin - 1), cand.end(),
                       [](const Cand& a, const Cand& b) { return a.key > b.key; });
      const uint32_t t = cand[need_in_bin - 1].key;
      int64_t greater = above;
      tied_flat.clear();
      for (const Cand& c : cand) {
        if (c.key > t) {
          ++greater;
        } else if (c.key == t) {
          int64_t flat = c.mem;
          if (channels_last) {  // memory (h*W + w)*C + c  ->  flat c*HW + (h*W + w)
            flat = (c.mem % channels) * hw + c.mem / channels;
          }
          tied_flat.push_back(flat);
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t v = xr[i];
        const bool win = key_of(static_cast<float>(v)) > t;
        mr[i] = win;
        yr[i] = keep_or_zero(v, win);
      }
      const int64_t keep = k - greater;  // tied values to keep, lowest flat index first
      if (keep > 0) {
        std::sort(tied_flat.begin(), tied_flat.end());
        for (int64_t j = 0; j < keep; ++j) {
          int64_t flat = tied_flat[j];
          int64_t mem = flat;
          if (channels_last) mem = (flat % hw) * channels + flat / hw;
          mr[mem] = true;
          yr[mem] = xr[mem];
        }
      }
    }
  });
}

// float32, bfloat16 and float16 only (float64 takes the PyTorch path).
template <typename F>
void dispatch(at::ScalarType type, const char* name, F&& fn) {
  switch (type) {
    case at::kFloat:
      fn(float{});
      break;
    case at::kBFloat16:
      fn(at::BFloat16{});
      break;
    case at::kHalf:
      fn(at::Half{});
      break;
    default:
      TORCH_CHECK(false, name, ": float32, bfloat16 or float16 only, got ", type);
  }
}

// x: (B, C, H, W) contiguous in NCHW or channels-last order, or (B, N) contiguous.
std::vector<torch::Tensor> kwta_forward(torch::Tensor x, int64_t k, bool channels_last) {
  TORCH_CHECK(x.device().is_cpu(), "kwta_forward: CPU tensors only");
  TORCH_CHECK(x.dim() >= 2, "kwta_forward: needs a batch dimension");
  const int64_t rows = x.size(0);
  const int64_t n = rows ? x.numel() / rows : 0;
  int64_t channels = 1, hw = n;
  if (channels_last) {
    TORCH_CHECK(x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast),
                "kwta_forward: channels_last needs a 4-D channels-last tensor");
    channels = x.size(1);
    hw = x.size(2) * x.size(3);
  } else {
    TORCH_CHECK(x.is_contiguous(), "kwta_forward: x must be contiguous");
  }
  auto y = torch::empty_like(x);
  auto mask = torch::empty_like(x, x.options().dtype(torch::kBool));
  if (rows == 0 || n == 0) return {y, mask};
  dispatch(x.scalar_type(), "kwta_forward", [&](auto tag) {
    using scalar_t = decltype(tag);
    kwta_rows<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), mask.data_ptr<bool>(),
                        rows, n, k, channels, hw, channels_last);
  });
  return {y, mask};
}

// grad * mask in one pass (grad and mask share x's memory layout).
torch::Tensor kwta_backward(torch::Tensor grad, torch::Tensor mask) {
  TORCH_CHECK(grad.sizes() == mask.sizes(), "kwta_backward: shape mismatch");
  auto mem = grad.is_contiguous() ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  if (mask.dim() != 4 || mask.is_contiguous()) mem = at::MemoryFormat::Contiguous;
  auto g = grad.contiguous(mem);
  auto m = mask.contiguous(mem);
  auto out = torch::empty_like(g);
  const int64_t total = g.numel();
  dispatch(g.scalar_type(), "kwta_backward", [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const bool* mp = m.data_ptr<bool>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, total, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) op[i] = keep_or_zero(gp[i], mp[i]);
    });
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &kwta_forward, "exact k-WTA forward: (y, mask)");
  m.def("backward", &kwta_backward, "k-WTA backward: grad * mask");
}
