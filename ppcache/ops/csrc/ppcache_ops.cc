// ppcache fused operators, CPU kernels (OpenMP; float32, float16, bfloat16) and their registration.
//
// Every op reproduces the eager Paddle expression it replaces (ppcache/ops/fallback.py), in the same order of
// floating-point operations. For float16/bfloat16 each intermediate is rounded to the storage type, as eager
// Paddle does between its kernels; reductions accumulate in float32 blocks summed in double.
//
//   ppcache_taylor_eval      out = F0 + F1*c1 + F2*c2 + F3*c3                 (orders 0..3)
//   ppcache_taylor_eval_add  out = base + F0 + F1*c1 + F2*c2 + F3*c3
//   ppcache_ladder_update    out[k-1] <- new F_k = (new F_{k-1} - old F_{k-1}) / gap, new F_0 = value; in place:
//                            `out` may be the very buffers of `old[1:]` (every old value is read before the
//                            element is written), so a ladder is updated with no temporaries
//   ppcache_rel_l1           per sample mean|a-b| / (mean|b| + 1e-12)
//   ppcache_channel_cosine   per sample mean over tokens of cos(a[..., :C], b[..., :C])
//   ppcache_all_finite       one flag for a list of tensors
#include "ppcache_ops.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#define PPCACHE_STREAMING_STORES 1
#endif
#include <type_traits>

namespace ppcache {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which one thread does the work
constexpr int64_t kBlock = 1024;           // float32 partial sums per block, blocks summed in double

// Threads of our parallel regions, read once: PPCACHE_OPS_THREADS, else OMP_NUM_THREADS as the process
// environment holds it now (Paddle sets it to 1 at import unless the user did; libgomp may have read the
// environment before that), else OpenMP's default. One thread opens no parallel region at all.
int Threads() {
  static const int threads = [] {
    int n = 0;
    for (const char* name : {"PPCACHE_OPS_THREADS", "OMP_NUM_THREADS"}) {
      const char* env = std::getenv(name);
      if (n <= 0 && env) n = std::atoi(env);
    }
#ifdef _OPENMP
    if (n <= 0) n = omp_get_max_threads();
#endif
    return n > 0 ? n : 1;
  }();
  return threads;
}

inline bool Parallel(int64_t work) { return work >= kParallelMin && Threads() > 1; }

// A large new output is written once, right after Paddle's allocator mapped it: ask for transparent huge pages
// (as numpy does) so that first touch costs a few 2 MiB faults instead of one fault per 4 KiB page. A hint only.
void AdviseHugePages(void* ptr, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < static_cast<int64_t>(4 * kHuge)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(ptr) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)ptr;
  (void)bytes;
#endif
}

#define PPCACHE_DISPATCH(dtype, ...)                                                 \
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
inline float Load(const T* p, int64_t i) {
  return static_cast<float>(p[i]);
}

template <typename T>
inline T Store(float v) {
  return static_cast<T>(v);
}

void CheckSame(const paddle::Tensor& a, const paddle::Tensor& b, const char* what) {
  PD_CHECK(a.shape() == b.shape(), "ppcache ", what, ": shapes differ");
  PD_CHECK(a.dtype() == b.dtype(), "ppcache ", what, ": dtypes differ");
}

// ---- float32 streaming paths ------------------------------------------------------------------------------
// Large float32 outputs are written with non-temporal stores: they do not fit in cache anyway, and bypassing it
// saves the read-for-ownership of every output line. Same IEEE single operations in the same order as the
// generic loops, so the results are bit-identical; used only when every output is 16-byte aligned.
constexpr int64_t kStreamMinBytes = int64_t(8) << 20;

inline bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <int N, bool kBase>
bool TaylorStreamF32(const float* base, const float* const* f, const float* c, float* out, int64_t n) {
#ifdef PPCACHE_STREAMING_STORES
  if (n * static_cast<int64_t>(sizeof(float)) < kStreamMinBytes || !Aligned16(out)) return false;
  const float* f0 = f[0];
  const float* f1 = N > 1 ? f[1] : nullptr;
  const float* f2 = N > 2 ? f[2] : nullptr;
  const float* f3 = N > 3 ? f[3] : nullptr;
  const __m128 c1 = _mm_set1_ps(N > 1 ? c[1] : 0.f), c2 = _mm_set1_ps(N > 2 ? c[2] : 0.f);
  const __m128 c3 = _mm_set1_ps(N > 3 ? c[3] : 0.f);
  const int64_t n4 = n & ~int64_t(3);
#pragma omp parallel for schedule(static) num_threads(Threads()) if (Parallel(n))
  for (int64_t i = 0; i < n4; i += 4) {
    __m128 acc = kBase ? _mm_add_ps(_mm_loadu_ps(base + i), _mm_loadu_ps(f0 + i)) : _mm_loadu_ps(f0 + i);
    if (N > 1) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(f1 + i), c1));
    if (N > 2) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(f2 + i), c2));
    if (N > 3) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(f3 + i), c3));
    _mm_stream_ps(out + i, acc);
  }
  _mm_sfence();
  for (int64_t i = n4; i < n; ++i) {
    float acc = kBase ? base[i] + f0[i] : f0[i];
    if (N > 1) acc = acc + f1[i] * c[1];
    if (N > 2) acc = acc + f2[i] * c[2];
    if (N > 3) acc = acc + f3[i] * c[3];
    out[i] = acc;
  }
  return true;
#else
  (void)base, (void)f, (void)c, (void)out, (void)n;
  return false;
#endif
}

template <int N>
bool LadderStreamF32(const float* v, const float* const* old, float* const* out, float gap, int64_t n) {
#ifdef PPCACHE_STREAMING_STORES
  if (n * static_cast<int64_t>(sizeof(float)) < kStreamMinBytes) return false;
  for (int k = 0; k < N; ++k) {
    if (!Aligned16(out[k])) return false;
  }
  const float* o0 = old[0];
  const float* o1 = N > 1 ? old[1] : nullptr;
  const float* o2 = N > 2 ? old[2] : nullptr;
  float* w0 = out[0];
  float* w1 = N > 1 ? out[1] : nullptr;
  float* w2 = N > 2 ? out[2] : nullptr;
  const __m128 g = _mm_set1_ps(gap);
  const int64_t n4 = n & ~int64_t(3);
  // out[k] may alias old[k + 1]: the four old values of each are loaded before the four new ones are stored
#pragma omp parallel for schedule(static) num_threads(Threads()) if (Parallel(n))
  for (int64_t i = 0; i < n4; i += 4) {
    const __m128 a0 = _mm_loadu_ps(o0 + i);
    const __m128 a1 = N > 1 ? _mm_loadu_ps(o1 + i) : _mm_setzero_ps();
    const __m128 a2 = N > 2 ? _mm_loadu_ps(o2 + i) : _mm_setzero_ps();
    __m128 cur = _mm_div_ps(_mm_sub_ps(_mm_loadu_ps(v + i), a0), g);
    _mm_stream_ps(w0 + i, cur);
    if (N > 1) {
      cur = _mm_div_ps(_mm_sub_ps(cur, a1), g);
      _mm_stream_ps(w1 + i, cur);
    }
    if (N > 2) {
      cur = _mm_div_ps(_mm_sub_ps(cur, a2), g);
      _mm_stream_ps(w2 + i, cur);
    }
  }
  _mm_sfence();
  for (int64_t i = n4; i < n; ++i) {
    const float a0 = o0[i];
    const float a1 = N > 1 ? o1[i] : 0.f;
    const float a2 = N > 2 ? o2[i] : 0.f;
    float cur = (v[i] - a0) / gap;
    w0[i] = cur;
    if (N > 1) w1[i] = cur = (cur - a1) / gap;
    if (N > 2) w2[i] = cur = (cur - a2) / gap;
  }
  return true;
#else
  (void)v, (void)old, (void)out, (void)gap, (void)n;
  return false;
#endif
}

// ---- prediction ------------------------------------------------------------------------------------------
template <typename T, int N, bool kBase>
void TaylorKernel(const T* base, const T* const* f, const float* c, T* out, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    if (TaylorStreamF32<N, kBase>(base, f, c, out, n)) return;
  }
  using R = Round<T>;
  const T* f0 = f[0];
  const T* f1 = N > 1 ? f[1] : nullptr;
  const T* f2 = N > 2 ? f[2] : nullptr;
  const T* f3 = N > 3 ? f[3] : nullptr;
  const float c1 = N > 1 ? c[1] : 0.f, c2 = N > 2 ? c[2] : 0.f, c3 = N > 3 ? c[3] : 0.f;
#pragma omp parallel for simd schedule(static) num_threads(Threads()) if (Parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    float acc = kBase ? R::apply(Load(base, i) + Load(f0, i)) : Load(f0, i);
    if (N > 1) acc = R::apply(acc + R::apply(Load(f1, i) * c1));
    if (N > 2) acc = R::apply(acc + R::apply(Load(f2, i) * c2));
    if (N > 3) acc = R::apply(acc + R::apply(Load(f3, i) * c3));
    out[i] = Store<T>(acc);
  }
}

template <typename T, bool kBase>
void TaylorDispatchN(int n_factors, const T* base, const T* const* f, const float* c, T* out, int64_t n) {
  switch (n_factors) {
    case 1: TaylorKernel<T, 1, kBase>(base, f, c, out, n); break;
    case 2: TaylorKernel<T, 2, kBase>(base, f, c, out, n); break;
    case 3: TaylorKernel<T, 3, kBase>(base, f, c, out, n); break;
    case 4: TaylorKernel<T, 4, kBase>(base, f, c, out, n); break;
    default: PD_THROW("ppcache taylor: 1 to 4 factors (orders 0..3), got ", n_factors);
  }
}

std::vector<paddle::Tensor> TaylorCPU(const paddle::Tensor* base, const std::vector<paddle::Tensor>& factors,
                                      const std::vector<float>& coefficients) {
  PD_CHECK(!factors.empty() && factors.size() <= 4, "ppcache taylor: 1 to 4 factors");
  PD_CHECK(coefficients.size() + 1 >= factors.size(), "ppcache taylor: one coefficient per factor after F0");
  const paddle::Tensor& f0 = factors[0];
  for (const auto& f : factors) CheckSame(f, f0, "taylor");
  if (base) CheckSame(*base, f0, "taylor");
  auto out = paddle::empty(f0.shape(), f0.dtype(), f0.place());
  const int64_t n = f0.numel();
  const int k = static_cast<int>(factors.size());
  PPCACHE_DISPATCH(f0.dtype(), {
    AdviseHugePages(out.data<T>(), n * static_cast<int64_t>(sizeof(T)));
    const T* ptrs[4] = {nullptr, nullptr, nullptr, nullptr};
    float c[4] = {1.f, 0.f, 0.f, 0.f};
    for (int j = 0; j < k; ++j) ptrs[j] = factors[j].data<T>();
    // eager Paddle multiplies by a Python scalar cast to the tensor's dtype
    for (int j = 1; j < k; ++j) c[j] = Round<T>::apply(coefficients[j - 1]);
    if (base) {
      TaylorDispatchN<T, true>(k, base->data<T>(), ptrs, c, out.data<T>(), n);
    } else {
      TaylorDispatchN<T, false>(k, nullptr, ptrs, c, out.data<T>(), n);
    }
  });
  return {out};
}

std::vector<paddle::Tensor> TaylorEval(const std::vector<paddle::Tensor>& factors,
                                       const std::vector<float>& coefficients) {
  if (factors.at(0).is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    return TaylorEvalCUDA(nullptr, factors, coefficients);
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  return TaylorCPU(nullptr, factors, coefficients);
}

std::vector<paddle::Tensor> TaylorEvalAdd(const paddle::Tensor& base, const std::vector<paddle::Tensor>& factors,
                                          const std::vector<float>& coefficients) {
  if (base.is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    return TaylorEvalCUDA(&base, factors, coefficients);
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  return TaylorCPU(&base, factors, coefficients);
}

// ---- divided differences ---------------------------------------------------------------------------------
template <typename T, int N>
void LadderKernel(const T* v, const T* const* old, T* const* out, float gap, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    if (LadderStreamF32<N>(v, old, out, gap, n)) return;
  }
  using R = Round<T>;
  const T* o0 = old[0];
  const T* o1 = N > 1 ? old[1] : nullptr;
  const T* o2 = N > 2 ? old[2] : nullptr;
  T* w0 = out[0];
  T* w1 = N > 1 ? out[1] : nullptr;
  T* w2 = N > 2 ? out[2] : nullptr;
  // out[k] may alias old[k + 1] element for element: all old values of element i are read before any write of
  // element i, and no element reads another, so `omp simd` is safe.
#pragma omp parallel for simd schedule(static) num_threads(Threads()) if (Parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    const float a0 = Load(o0, i);
    const float a1 = N > 1 ? Load(o1, i) : 0.f;
    const float a2 = N > 2 ? Load(o2, i) : 0.f;
    float cur = R::apply(R::apply(Load(v, i) - a0) / gap);
    w0[i] = Store<T>(cur);
    if (N > 1) {
      cur = R::apply(R::apply(cur - a1) / gap);
      w1[i] = Store<T>(cur);
    }
    if (N > 2) {
      cur = R::apply(R::apply(cur - a2) / gap);
      w2[i] = Store<T>(cur);
    }
  }
}

void LadderUpdate(const paddle::Tensor& value, const std::vector<paddle::Tensor>& old,
                  std::vector<paddle::Tensor>& out, float gap) {
  PD_CHECK(!out.empty() && out.size() <= 3, "ppcache ladder: 1 to 3 new factors");
  PD_CHECK(old.size() == out.size(), "ppcache ladder: one old factor per new factor");
  for (const auto& t : old) CheckSame(t, value, "ladder");
  for (const auto& t : out) CheckSame(t, value, "ladder");
  if (value.is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    LadderUpdateCUDA(value, old, out, gap);
    return;
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  const int64_t n = value.numel();
  const int k = static_cast<int>(out.size());
  PPCACHE_DISPATCH(value.dtype(), {
    const T* o[3] = {nullptr, nullptr, nullptr};
    T* w[3] = {nullptr, nullptr, nullptr};
    for (int j = 0; j < k; ++j) {
      o[j] = old[j].data<T>();
      w[j] = out[j].data<T>();
      AdviseHugePages(w[j], n * static_cast<int64_t>(sizeof(T)));  // new buffers; no effect on touched ones
    }
    const float g = Round<T>::apply(gap);
    const T* v = value.data<T>();
    if (k == 1) LadderKernel<T, 1>(v, o, w, g, n);
    if (k == 2) LadderKernel<T, 2>(v, o, w, g, n);
    if (k == 3) LadderKernel<T, 3>(v, o, w, g, n);
  });
}

// ---- rel-L1 ----------------------------------------------------------------------------------------------
template <typename T>
void RelL1Kernel(const T* a, const T* b, int64_t samples, int64_t m, float* out) {
  const int64_t blocks = (m + kBlock - 1) / kBlock;
  for (int64_t s = 0; s < samples; ++s) {
    const T* pa = a + s * m;
    const T* pb = b + s * m;
    double diff = 0.0, ref = 0.0;
#pragma omp parallel for reduction(+ : diff, ref) schedule(static) num_threads(Threads()) if (Parallel(m))
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t lo = blk * kBlock;
      const int64_t hi = lo + kBlock < m ? lo + kBlock : m;
      float d = 0.f, r = 0.f;
#pragma omp simd reduction(+ : d, r)
      for (int64_t i = lo; i < hi; ++i) {
        const float x = Load(pa, i), y = Load(pb, i);
        d += std::fabs(x - y);
        r += std::fabs(y);
      }
      diff += d;
      ref += r;
    }
    const float mean_diff = static_cast<float>(diff / static_cast<double>(m));
    const float mean_ref = static_cast<float>(ref / static_cast<double>(m));
    out[s] = mean_diff / (mean_ref + 1e-12f);
  }
}

std::vector<paddle::Tensor> RelL1(const paddle::Tensor& a, const paddle::Tensor& b, bool per_sample) {
  CheckSame(a, b, "rel_l1");
  if (a.is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    return RelL1CUDA(a, b, per_sample);
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  const auto shape = a.shape();
  const int64_t samples = per_sample && !shape.empty() ? shape[0] : 1;
  PD_CHECK(samples > 0 && a.numel() > 0, "ppcache rel_l1: empty input");
  const int64_t m = a.numel() / samples;
  std::vector<int64_t> out_shape;
  if (per_sample) out_shape.push_back(samples);
  auto out = paddle::empty(out_shape, paddle::DataType::FLOAT32, a.place());
  PPCACHE_DISPATCH(a.dtype(), RelL1Kernel<T>(a.data<T>(), b.data<T>(), samples, m, out.data<float>()));
  return {out};
}

// ---- channel-subset cosine -------------------------------------------------------------------------------
template <typename T>
void CosineKernel(const T* a, const T* b, int64_t samples, int64_t tokens, int64_t ca, int64_t cb,
                  int64_t channels, float* out) {
  for (int64_t s = 0; s < samples; ++s) {
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) num_threads(Threads()) if (Parallel(tokens * channels))
    for (int64_t t = 0; t < tokens; ++t) {
      const T* ra = a + (s * tokens + t) * ca;
      const T* rb = b + (s * tokens + t) * cb;
      float dot = 0.f, saa = 0.f, sbb = 0.f;
#pragma omp simd reduction(+ : dot, saa, sbb)
      for (int64_t c = 0; c < channels; ++c) {
        const float x = Load(ra, c), y = Load(rb, c);
        dot += x * y;
        saa += x * x;
        sbb += y * y;
      }
      total += dot / (std::sqrt(saa) * std::sqrt(sbb) + 1e-12f);
    }
    out[s] = static_cast<float>(total / static_cast<double>(tokens));
  }
}

std::vector<paddle::Tensor> ChannelCosine(const paddle::Tensor& a, const paddle::Tensor& b, int64_t channels) {
  PD_CHECK(a.dtype() == b.dtype(), "ppcache channel_cosine: dtypes differ");
  const auto sa = a.shape(), sb = b.shape();
  PD_CHECK(sa.size() >= 2 && sa.size() == sb.size(), "ppcache channel_cosine: inputs must be [B, ..., C]");
  for (size_t i = 0; i + 1 < sa.size(); ++i) PD_CHECK(sa[i] == sb[i], "ppcache channel_cosine: leading dims differ");
  const int64_t ca = sa.back(), cb = sb.back();
  PD_CHECK(channels > 0 && channels <= ca && channels <= cb, "ppcache channel_cosine: bad channel count");
  if (a.is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    return ChannelCosineCUDA(a, b, channels);
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  const int64_t samples = sa[0];
  int64_t tokens = 1;
  for (size_t i = 1; i + 1 < sa.size(); ++i) tokens *= sa[i];
  PD_CHECK(samples > 0 && tokens > 0, "ppcache channel_cosine: empty input");
  auto out = paddle::empty({samples}, paddle::DataType::FLOAT32, a.place());
  PPCACHE_DISPATCH(a.dtype(), CosineKernel<T>(a.data<T>(), b.data<T>(), samples, tokens, ca, cb, channels,
                                              out.data<float>()));
  return {out};
}

// ---- finiteness ------------------------------------------------------------------------------------------
template <typename T>
struct ExponentBits;
template <>
struct ExponentBits<float> {
  using U = uint32_t;
  static constexpr U kMask = 0x7f800000u;
};
template <>
struct ExponentBits<paddle::float16> {
  using U = uint16_t;
  static constexpr U kMask = 0x7c00u;
};
template <>
struct ExponentBits<paddle::bfloat16> {
  using U = uint16_t;
  static constexpr U kMask = 0x7f80u;
};

template <typename T>
bool FiniteKernel(const T* x, int64_t n) {
  using E = ExponentBits<T>;
  static_assert(sizeof(typename E::U) == sizeof(T), "bit width");
  const typename E::U* bits = reinterpret_cast<const typename E::U*>(x);
  int64_t bad = 0;
#pragma omp parallel for simd reduction(+ : bad) schedule(static) num_threads(Threads()) if (Parallel(n))
  for (int64_t i = 0; i < n; ++i) bad += (bits[i] & E::kMask) == E::kMask;
  return bad == 0;
}

std::vector<paddle::Tensor> AllFinite(const std::vector<paddle::Tensor>& xs) {
  PD_CHECK(!xs.empty(), "ppcache all_finite: no tensors");
  if (xs[0].is_gpu()) {
#ifdef PPCACHE_WITH_CUDA
    return AllFiniteCUDA(xs);
#else
    PD_THROW("ppcache ops were built without CUDA");
#endif
  }
  bool ok = true;
  for (const auto& x : xs) {
    if (!ok) break;
    PPCACHE_DISPATCH(x.dtype(), ok = FiniteKernel<T>(x.data<T>(), x.numel()));
  }
  auto out = paddle::empty(std::vector<int64_t>{}, paddle::DataType::BOOL, xs[0].place());
  *out.data<bool>() = ok;
  return {out};
}

}  // namespace
}  // namespace ppcache

PD_BUILD_OP(ppcache_taylor_eval)
    .Inputs({paddle::Vec("Factors")})
    .Outputs({"Out"})
    .Attrs({"coefficients: std::vector<float>"})
    .SetKernelFn(PD_KERNEL(ppcache::TaylorEval));

PD_BUILD_OP(ppcache_taylor_eval_add)
    .Inputs({"Base", paddle::Vec("Factors")})
    .Outputs({"Out"})
    .Attrs({"coefficients: std::vector<float>"})
    .SetKernelFn(PD_KERNEL(ppcache::TaylorEvalAdd));

PD_BUILD_OP(ppcache_ladder_update)
    .Inputs({"Value", paddle::Vec("Old"), paddle::Vec("Out")})
    .Outputs({paddle::Vec("OutInplace")})
    .Attrs({"gap: float"})
    .SetInplaceMap({{paddle::Vec("Out"), paddle::Vec("OutInplace")}})
    .SetKernelFn(PD_KERNEL(ppcache::LadderUpdate));

PD_BUILD_OP(ppcache_rel_l1)
    .Inputs({"A", "B"})
    .Outputs({"Out"})
    .Attrs({"per_sample: bool"})
    .SetKernelFn(PD_KERNEL(ppcache::RelL1));

PD_BUILD_OP(ppcache_channel_cosine)
    .Inputs({"A", "B"})
    .Outputs({"Out"})
    .Attrs({"channels: int64_t"})
    .SetKernelFn(PD_KERNEL(ppcache::ChannelCosine));

PD_BUILD_OP(ppcache_all_finite)
    .Inputs({paddle::Vec("X")})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ppcache::AllFinite));
