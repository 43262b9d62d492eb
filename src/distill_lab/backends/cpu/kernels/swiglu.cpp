// SwiGLU gate of a gated MLP, h = silu(g) * u, forward and backward in one pass each, fp32, for CPU.
//
// Built and loaded like row_attention.cpp (distill_lab/backends/cpu/cpu_kernels.py); used by
// distill_lab/backends/cpu/fused_mlp.py. PyTorch runs silu and the product as separate ops, and autograd
// differentiates each: five passes over the [tokens, intermediate] activations forward and backward
// together become two here.
//
//   silu(g)  = g * s,  s = sigmoid(g)
//   dh/dg    = u * s * (1 + g * (1 - s)),  dh/du = g * s

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "vec.h"

using namespace vec;

namespace {

inline v8 sigmoid(v8 x) {
  const v8 one = splat(1.0f);
  v8 e = exp_nonpositive(x < splat(0.0f) ? x : -x);  // exp(-|x|), never overflows
  v8 r = one / (one + e);
  return x < splat(0.0f) ? e * r : r;
}

constexpr long CHUNK = 1 << 14;  // floats per parallel work item

template <class Fn>
void chunks(long n, int nthreads, Fn fn) {
  const long items = (n + CHUNK - 1) / CHUNK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, int(std::min<long>(nthreads, items))))
#endif
  for (long c = 0; c < items; ++c) fn(c * CHUNK, std::min(n, (c + 1) * CHUNK));
}

}  // namespace

extern "C" {

// h[i] = silu(g[i]) * u[i] for i < n (contiguous arrays).
int swiglu_forward(const float* g, const float* u, float* h, long n, int nthreads) {
  chunks(n, nthreads, [&](long lo, long hi) {
    long i = lo;
    for (; i + 8 <= hi; i += 8) {
      v8 x = load(g + i);
      store(h + i, x * sigmoid(x) * load(u + i));
    }
    for (; i < hi; ++i) {
      float x = g[i];
      h[i] = x / (1.0f + std::exp(-x)) * u[i];
    }
  });
  return 0;
}

// dg, du from dh, g, u (contiguous arrays of n floats).
int swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, long n, int nthreads) {
  chunks(n, nthreads, [&](long lo, long hi) {
    const v8 one = splat(1.0f);
    long i = lo;
    for (; i + 8 <= hi; i += 8) {
      v8 x = load(g + i), s = sigmoid(x), d = load(dh + i);
      store(du + i, d * x * s);
      store(dg + i, d * load(u + i) * s * (one + x * (one - s)));
    }
    for (; i < hi; ++i) {
      float x = g[i], s = 1.0f / (1.0f + std::exp(-x));
      du[i] = dh[i] * x * s;
      dg[i] = dh[i] * u[i] * s * (1.0f + x * (1.0f - s));
    }
  });
  return 0;
}

}  // extern "C"
