// Shared declarations of the ppcache fused operators (CPU in ppcache_ops.cc, CUDA in ppcache_ops.cu).
#pragma once

#include <vector>

#include "paddle/extension.h"

namespace ppcache {

// Rounding to the storage type after every step, so that fp16/bf16 results follow eager Paddle's per-kernel
// rounding. For float it is the identity.
template <typename T>
struct Round {
  static inline float apply(float v) { return static_cast<float>(static_cast<T>(v)); }
};
template <>
struct Round<float> {
  static inline float apply(float v) { return v; }
};

#ifdef PPCACHE_WITH_CUDA
std::vector<paddle::Tensor> TaylorEvalCUDA(const paddle::Tensor* base, const std::vector<paddle::Tensor>& factors,
                                           const std::vector<float>& coefficients);
void LadderUpdateCUDA(const paddle::Tensor& value, const std::vector<paddle::Tensor>& old,
                      std::vector<paddle::Tensor>& out, float gap);
std::vector<paddle::Tensor> RelL1CUDA(const paddle::Tensor& a, const paddle::Tensor& b, bool per_sample);
std::vector<paddle::Tensor> ChannelCosineCUDA(const paddle::Tensor& a, const paddle::Tensor& b, int64_t channels);
std::vector<paddle::Tensor> AllFiniteCUDA(const std::vector<paddle::Tensor>& xs);
#endif

}  // namespace ppcache
