// ppcache fused operators, CUDA kernels (float32, float16, bfloat16). Compiled only when Paddle is built with
// CUDA (ppcache/ops/build.py adds this file and -DPPCACHE_WITH_CUDA); the CPU file dispatches here for GPU
// tensors. Same arithmetic as the CPU kernels: per-step rounding to the storage type for 16-bit types,
// float32 partial sums accumulated in double for the reductions. Built with --fmad=false so float32 results
// match eager Paddle's separate multiply and add.
//
// NOT VERIFIED IN CI: the project's CI has no GPU and uses CPU Paddle, so this file has never been compiled
// or run there.
#include <cuda_runtime.h>

#include "ppcache_ops.h"

namespace ppcache {
namespace {

constexpr int kThreads = 256;

#define PPCACHE_CUDA_DISPATCH(dtype, ...)                                            \
  switch (dtype) {                                                                   \
    case paddle::DataType::FLOAT32: {                                                \
      using T = float;                                                               \
      __VA_ARGS__;                                                                   \
      break;                                                                         \
    }                                                                                \
    case paddle::DataType::FLOAT16: {                                                \
      using T = paddle::float16;                                                     \
      __VA_ARGS__;                                                                   \
      break;                                                                         \
    }                                                                                \
    case paddle::DataType::BFLOAT16: {                                               \
      using T = paddle::bfloat16;                                                    \
      __VA_ARGS__;                                                                   \
      break;                                                                         \
    }                                                                                \
    default:                                                                         \
      PD_THROW("ppcache ops support float32, float16 and bfloat16 only");           \
  }

template <typename T>
__device__ __forceinline__ float Ld(const T* p, int64_t i) {
  return static_cast<float>(p[i]);
}

template <typename T>
__device__ __forceinline__ float Rnd(float v) {
  return static_cast<float>(static_cast<T>(v));
}
template <>
__device__ __forceinline__ float Rnd<float>(float v) {
  return v;
}

inline int Blocks(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

struct Ptrs4 {
  const void* p[4];
};

// ---- prediction ------------------------------------------------------------------------------------------
template <typename T, int N, bool kBase>
__global__ void TaylorKernel(const T* __restrict__ base, Ptrs4 f, float c1, float c2, float c3, T* out, int64_t n) {
  const T* f0 = static_cast<const T*>(f.p[0]);
  const T* f1 = static_cast<const T*>(f.p[1]);
  const T* f2 = static_cast<const T*>(f.p[2]);
  const T* f3 = static_cast<const T*>(f.p[3]);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float acc = kBase ? Rnd<T>(__fadd_rn(Ld(base, i), Ld(f0, i))) : Ld(f0, i);
    if (N > 1) acc = Rnd<T>(__fadd_rn(acc, Rnd<T>(__fmul_rn(Ld(f1, i), c1))));
    if (N > 2) acc = Rnd<T>(__fadd_rn(acc, Rnd<T>(__fmul_rn(Ld(f2, i), c2))));
    if (N > 3) acc = Rnd<T>(__fadd_rn(acc, Rnd<T>(__fmul_rn(Ld(f3, i), c3))));
    out[i] = static_cast<T>(acc);
  }
}

template <typename T, bool kBase>
void LaunchTaylor(int k, const T* base, Ptrs4 f, const float* c, T* out, int64_t n, cudaStream_t stream) {
  const int blocks = Blocks(n);
  switch (k) {
    case 1: TaylorKernel<T, 1, kBase><<<blocks, kThreads, 0, stream>>>(base, f, c[1], c[2], c[3], out, n); break;
    case 2: TaylorKernel<T, 2, kBase><<<blocks, kThreads, 0, stream>>>(base, f, c[1], c[2], c[3], out, n); break;
    case 3: TaylorKernel<T, 3, kBase><<<blocks, kThreads, 0, stream>>>(base, f, c[1], c[2], c[3], out, n); break;
    case 4: TaylorKernel<T, 4, kBase><<<blocks, kThreads, 0, stream>>>(base, f, c[1], c[2], c[3], out, n); break;
    default: PD_THROW("ppcache taylor: 1 to 4 factors");
  }
}

// ---- divided differences ---------------------------------------------------------------------------------
template <typename T, int N>
__global__ void LadderKernel(const T* v, Ptrs4 old, Ptrs4 out, float gap, int64_t n) {
  // out[k] may alias old[k + 1]: each thread reads all old values of its element before writing it.
  const T* o0 = static_cast<const T*>(old.p[0]);
  const T* o1 = static_cast<const T*>(old.p[1]);
  const T* o2 = static_cast<const T*>(old.p[2]);
  T* w0 = static_cast<T*>(const_cast<void*>(out.p[0]));
  T* w1 = static_cast<T*>(const_cast<void*>(out.p[1]));
  T* w2 = static_cast<T*>(const_cast<void*>(out.p[2]));
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float a0 = Ld(o0, i);
    const float a1 = N > 1 ? Ld(o1, i) : 0.f;
    const float a2 = N > 2 ? Ld(o2, i) : 0.f;
    float cur = Rnd<T>(__fdiv_rn(Rnd<T>(__fsub_rn(Ld(v, i), a0)), gap));
    w0[i] = static_cast<T>(cur);
    if (N > 1) {
      cur = Rnd<T>(__fdiv_rn(Rnd<T>(__fsub_rn(cur, a1)), gap));
      w1[i] = static_cast<T>(cur);
    }
    if (N > 2) {
      cur = Rnd<T>(__fdiv_rn(Rnd<T>(__fsub_rn(cur, a2)), gap));
      w2[i] = static_cast<T>(cur);
    }
  }
}

// ---- reductions ------------------------------------------------------------------------------------------
__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Block sum of one float per thread; the result is valid in thread 0.
__device__ float BlockSum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? shared[lane] : 0.f;
  if (warp == 0) v = WarpSum(v);
  __syncthreads();
  return v;
}

// grid: (chunks, samples). acc[2 * s] += sum|a-b|, acc[2 * s + 1] += sum|b| over sample s.
template <typename T>
__global__ void RelL1Kernel(const T* a, const T* b, int64_t m, double* acc) {
  __shared__ float shared[32];
  const int64_t s = blockIdx.y;
  const T* pa = a + s * m;
  const T* pb = b + s * m;
  float d = 0.f, r = 0.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = Ld(pa, i), y = Ld(pb, i);
    d += fabsf(x - y);
    r += fabsf(y);
  }
  d = BlockSum(d, shared);
  r = BlockSum(r, shared);
  if (threadIdx.x == 0) {
    atomicAdd(acc + 2 * s, static_cast<double>(d));
    atomicAdd(acc + 2 * s + 1, static_cast<double>(r));
  }
}

__global__ void RelL1Finish(const double* acc, int64_t samples, int64_t m, float* out) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s < samples) {
    const float mean_diff = static_cast<float>(acc[2 * s] / static_cast<double>(m));
    const float mean_ref = static_cast<float>(acc[2 * s + 1] / static_cast<double>(m));
    out[s] = mean_diff / (mean_ref + 1e-12f);
  }
}

// One warp per row (token); acc[s] += cosine of each row of sample s.
template <typename T>
__global__ void CosineKernel(const T* a, const T* b, int64_t samples, int64_t tokens, int64_t ca, int64_t cb,
                             int64_t channels, double* acc) {
  const int64_t warps_per_block = blockDim.x >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t rows = samples * tokens;
  for (int64_t row = blockIdx.x * warps_per_block + (threadIdx.x >> 5); row < rows;
       row += static_cast<int64_t>(gridDim.x) * warps_per_block) {
    const T* ra = a + row * ca;
    const T* rb = b + row * cb;
    float dot = 0.f, saa = 0.f, sbb = 0.f;
    for (int64_t c = lane; c < channels; c += 32) {
      const float x = Ld(ra, c), y = Ld(rb, c);
      dot += x * y;
      saa += x * x;
      sbb += y * y;
    }
    dot = WarpSum(dot);
    saa = WarpSum(saa);
    sbb = WarpSum(sbb);
    if (lane == 0) {
      atomicAdd(acc + row / tokens, static_cast<double>(dot / (sqrtf(saa) * sqrtf(sbb) + 1e-12f)));
    }
  }
}

__global__ void CosineFinish(const double* acc, int64_t samples, int64_t tokens, float* out) {
  const int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s < samples) out[s] = static_cast<float>(acc[s] / static_cast<double>(tokens));
}

template <typename T>
struct Bits;
template <>
struct Bits<float> {
  using U = unsigned int;
  static constexpr U kMask = 0x7f800000u;
};
template <>
struct Bits<paddle::float16> {
  using U = unsigned short;
  static constexpr U kMask = 0x7c00u;
};
template <>
struct Bits<paddle::bfloat16> {
  using U = unsigned short;
  static constexpr U kMask = 0x7f80u;
};

template <typename T>
__global__ void FiniteKernel(const T* x, int64_t n, int* bad) {
  using B = Bits<T>;
  const typename B::U* bits = reinterpret_cast<const typename B::U*>(x);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if ((bits[i] & B::kMask) == B::kMask) *bad = 1;
  }
}

__global__ void FiniteFinish(const int* bad, bool* out) { *out = (*bad == 0); }

}  // namespace

std::vector<paddle::Tensor> TaylorEvalCUDA(const paddle::Tensor* base, const std::vector<paddle::Tensor>& factors,
                                           const std::vector<float>& coefficients) {
  const paddle::Tensor& f0 = factors.at(0);
  PD_CHECK(factors.size() <= 4 && coefficients.size() + 1 >= factors.size(), "ppcache taylor: bad arity");
  for (const auto& f : factors) PD_CHECK(f.shape() == f0.shape() && f.dtype() == f0.dtype(), "ppcache taylor");
  if (base) PD_CHECK(base->shape() == f0.shape() && base->dtype() == f0.dtype(), "ppcache taylor");
  auto out = paddle::empty(f0.shape(), f0.dtype(), f0.place());
  const int k = static_cast<int>(factors.size());
  PPCACHE_CUDA_DISPATCH(f0.dtype(), {
    Ptrs4 f{{nullptr, nullptr, nullptr, nullptr}};
    float c[4] = {1.f, 0.f, 0.f, 0.f};
    for (int j = 0; j < k; ++j) f.p[j] = factors[j].data<T>();
    for (int j = 1; j < k; ++j) c[j] = static_cast<float>(static_cast<T>(coefficients[j - 1]));
    if (base) {
      LaunchTaylor<T, true>(k, base->data<T>(), f, c, out.data<T>(), f0.numel(), f0.stream());
    } else {
      LaunchTaylor<T, false>(k, nullptr, f, c, out.data<T>(), f0.numel(), f0.stream());
    }
  });
  return {out};
}

void LadderUpdateCUDA(const paddle::Tensor& value, const std::vector<paddle::Tensor>& old,
                      std::vector<paddle::Tensor>& out, float gap) {
  const int k = static_cast<int>(out.size());
  const int64_t n = value.numel();
  PPCACHE_CUDA_DISPATCH(value.dtype(), {
    Ptrs4 o{{nullptr, nullptr, nullptr, nullptr}}, w{{nullptr, nullptr, nullptr, nullptr}};
    for (int j = 0; j < k; ++j) {
      o.p[j] = old[j].data<T>();
      w.p[j] = out[j].data<T>();
    }
    const float g = static_cast<float>(static_cast<T>(gap));
    const int blocks = Blocks(n);
    auto stream = value.stream();
    if (k == 1) LadderKernel<T, 1><<<blocks, kThreads, 0, stream>>>(value.data<T>(), o, w, g, n);
    if (k == 2) LadderKernel<T, 2><<<blocks, kThreads, 0, stream>>>(value.data<T>(), o, w, g, n);
    if (k == 3) LadderKernel<T, 3><<<blocks, kThreads, 0, stream>>>(value.data<T>(), o, w, g, n);
  });
}

std::vector<paddle::Tensor> RelL1CUDA(const paddle::Tensor& a, const paddle::Tensor& b, bool per_sample) {
  const auto shape = a.shape();
  const int64_t samples = per_sample && !shape.empty() ? shape[0] : 1;
  PD_CHECK(samples > 0 && a.numel() > 0, "ppcache rel_l1: empty input");
  const int64_t m = a.numel() / samples;
  std::vector<int64_t> out_shape;
  if (per_sample) out_shape.push_back(samples);
  auto out = paddle::empty(out_shape, paddle::DataType::FLOAT32, a.place());
  auto acc = paddle::empty({2 * samples}, paddle::DataType::FLOAT64, a.place());
  auto stream = a.stream();
  cudaMemsetAsync(acc.data<double>(), 0, sizeof(double) * 2 * samples, stream);
  int chunks = Blocks(m);
  if (chunks > 1024) chunks = 1024;
  dim3 grid(chunks, static_cast<unsigned>(samples));
  PPCACHE_CUDA_DISPATCH(a.dtype(),
                        RelL1Kernel<T><<<grid, kThreads, 0, stream>>>(a.data<T>(), b.data<T>(), m, acc.data<double>()));
  RelL1Finish<<<Blocks(samples), kThreads, 0, stream>>>(acc.data<double>(), samples, m, out.data<float>());
  return {out};
}

std::vector<paddle::Tensor> ChannelCosineCUDA(const paddle::Tensor& a, const paddle::Tensor& b, int64_t channels) {
  const auto sa = a.shape(), sb = b.shape();
  const int64_t samples = sa[0];
  int64_t tokens = 1;
  for (size_t i = 1; i + 1 < sa.size(); ++i) tokens *= sa[i];
  PD_CHECK(samples > 0 && tokens > 0, "ppcache channel_cosine: empty input");
  auto out = paddle::empty({samples}, paddle::DataType::FLOAT32, a.place());
  auto acc = paddle::empty({samples}, paddle::DataType::FLOAT64, a.place());
  auto stream = a.stream();
  cudaMemsetAsync(acc.data<double>(), 0, sizeof(double) * samples, stream);
  const int64_t rows = samples * tokens;
  const int warps = kThreads / 32;
  int64_t blocks = (rows + warps - 1) / warps;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  PPCACHE_CUDA_DISPATCH(a.dtype(), CosineKernel<T><<<static_cast<int>(blocks), kThreads, 0, stream>>>(
                                       a.data<T>(), b.data<T>(), samples, tokens, sa.back(), sb.back(), channels,
                                       acc.data<double>()));
  CosineFinish<<<Blocks(samples), kThreads, 0, stream>>>(acc.data<double>(), samples, tokens, out.data<float>());
  return {out};
}

std::vector<paddle::Tensor> AllFiniteCUDA(const std::vector<paddle::Tensor>& xs) {
  auto out = paddle::empty(std::vector<int64_t>{}, paddle::DataType::BOOL, xs[0].place());
  auto bad = paddle::empty({1}, paddle::DataType::INT32, xs[0].place());
  auto stream = xs[0].stream();
  cudaMemsetAsync(bad.data<int>(), 0, sizeof(int), stream);
  for (const auto& x : xs) {
    PPCACHE_CUDA_DISPATCH(x.dtype(), FiniteKernel<T><<<Blocks(x.numel()), kThreads, 0, stream>>>(
                                         x.data<T>(), x.numel(), bad.data<int>()));
  }
  FiniteFinish<<<1, 1, 0, stream>>>(bad.data<int>(), out.data<bool>());
  return {out};
}

}  // namespace ppcache
