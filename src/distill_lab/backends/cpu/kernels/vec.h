// Eight-float vectors for the CPU kernels (GCC/Clang vector extensions: one ymm register with AVX2,
// two 128-bit registers elsewhere), and a vectorised exp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace vec {

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

inline v8 load(const float* p) { v8 r; std::memcpy(&r, p, sizeof r); return r; }
inline void store(float* p, v8 x) { std::memcpy(p, &x, sizeof x); }
inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }
inline float hsum(v8 x) { return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])); }
inline float hmax(v8 x) {
  float m = x[0];
  for (int i = 1; i < 8; ++i) m = std::max(m, x[i]);
  return m;
}

// exp(x) for x <= 0 (inputs below -87 give about 1e-38 instead of 0).
// Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^n via the exponent bits.
inline v8 exp_nonpositive(v8 x) {
  const v8 lo = splat(-87.0f);
  x = x < lo ? lo : x;
  const v8 magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  v8 n = (x * splat(1.44269504088896341f) + magic) - magic;
  v8 r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  v8 p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * (r * r) + r + splat(1.0f);
  v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace vec
