// Causal attention inside each row of a training batch, fp32, forward and backward, for CPU.
//
// Built at first use by distill_lab/backends/cpu/cpu_kernels.py (plain c++, no torch headers) and called
// through ctypes; see distill_lab/backends/cpu/attention.py for how rows ("spans") come from the batch.
//
// Why: PyTorch's CPU flash-attention kernel reaches about a quarter of this CPU's fp32 peak with the
// small head sizes of small students (head_dim 32-64), because its tile products go through BLAS calls
// on tiny matrices. Here every product is a register-tiled loop over 4 query rows x 16 floats written
// with GCC vector extensions (ymm registers on AVX2), and the softmax is fused into the same pass.
//
// Layout: q [B, H, T, D], k and v [B, Hk, T, D] (any strides for b, h, t; d contiguous), with
// H = G * Hk (grouped-query heads: query head h reads key/value head h / G). Outputs are contiguous:
// out and dq [B, T, H, D], dk and dv [B, T, Hk, D], lse [B, H, T] (log-sum-exp of each query's scaled
// scores, saved by the forward for the backward). A row is (b, start, end): query i of the row sees
// keys start..i. Work is split over (row, key/value head) pairs, longest rows first.
//
// Requirements, checked by the caller: D is a multiple of 16 and at most 1024, and every row is at most
// max_len long.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "vec.h"

using namespace vec;

namespace {

constexpr int BM = 4;   // query rows per tile
constexpr int BN = 16;  // floats per tile column block (two v8)

// C[r][0:ncols] = sum_d A_r[d] * BT[d][0:ncols] for the 4 rows A_r; BT is [D][ldb], ncols % 16 == 0.
void rows_times_packed(const float* const A[BM], const float* BT, long ldb, int D, float* C, long ldc, int ncols) {
  for (int j = 0; j < ncols; j += BN) {
    v8 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
    const float* b = BT + j;
    for (int d = 0; d < D; ++d, b += ldb) {
      v8 b0 = load(b), b1 = load(b + 8);
      v8 a0 = splat(A[0][d]), a1 = splat(A[1][d]), a2 = splat(A[2][d]), a3 = splat(A[3][d]);
      c00 += a0 * b0; c01 += a0 * b1;
      c10 += a1 * b0; c11 += a1 * b1;
      c20 += a2 * b0; c21 += a2 * b1;
      c30 += a3 * b0; c31 += a3 * b1;
    }
    store(C + j, c00); store(C + j + 8, c01);
    store(C + ldc + j, c10); store(C + ldc + j + 8, c11);
    store(C + 2 * ldc + j, c20); store(C + 2 * ldc + j + 8, c21);
    store(C + 3 * ldc + j, c30); store(C + 3 * ldc + j + 8, c31);
  }
}

// out_r[0:D] = scale_r * sum_{j < n} X[r][j] * Y[j][0:D] for the 4 rows of X ([4][ldx]); Y rows at stride sy.
void tile_times_rows(const float* X, long ldx, int n, const float* Y, long sy, int D, float* const out[BM],
                     const float scale[BM]) {
  for (int dc = 0; dc < D; dc += BN) {
    v8 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
    const float* y = Y + dc;
    for (int j = 0; j < n; ++j, y += sy) {
      v8 y0 = load(y), y1 = load(y + 8);
      v8 x0 = splat(X[j]), x1 = splat(X[ldx + j]), x2 = splat(X[2 * ldx + j]), x3 = splat(X[3 * ldx + j]);
      c00 += x0 * y0; c01 += x0 * y1;
      c10 += x1 * y0; c11 += x1 * y1;
      c20 += x2 * y0; c21 += x2 * y1;
      c30 += x3 * y0; c31 += x3 * y1;
    }
    v8 s0 = splat(scale[0]), s1 = splat(scale[1]), s2 = splat(scale[2]), s3 = splat(scale[3]);
    if (out[0]) { store(out[0] + dc, c00 * s0); store(out[0] + dc + 8, c01 * s0); }
    if (out[1]) { store(out[1] + dc, c10 * s1); store(out[1] + dc + 8, c11 * s1); }
    if (out[2]) { store(out[2] + dc, c20 * s2); store(out[2] + dc + 8, c21 * s2); }
    if (out[3]) { store(out[3] + dc, c30 * s3); store(out[3] + dc + 8, c31 * s3); }
  }
}

// Acc[j][0:D] += sum_r X[r][j] * Y_r[0:D] for j < n: a rank-4 update of the rows of Acc (stride sacc).
void add_outer(const float* X, long ldx, int n, const float* const Y[BM], int D, float* Acc, long sacc) {
  for (int dc = 0; dc < D; dc += BN) {
    v8 y00 = load(Y[0] + dc), y01 = load(Y[0] + dc + 8), y10 = load(Y[1] + dc), y11 = load(Y[1] + dc + 8);
    v8 y20 = load(Y[2] + dc), y21 = load(Y[2] + dc + 8), y30 = load(Y[3] + dc), y31 = load(Y[3] + dc + 8);
    float* acc = Acc + dc;
    for (int j = 0; j < n; ++j, acc += sacc) {
      v8 x0 = splat(X[j]), x1 = splat(X[ldx + j]), x2 = splat(X[2 * ldx + j]), x3 = splat(X[3 * ldx + j]);
      v8 a0 = load(acc), a1 = load(acc + 8);
      a0 += x0 * y00 + x1 * y10 + x2 * y20 + x3 * y30;
      a1 += x0 * y01 + x1 * y11 + x2 * y21 + x3 * y31;
      store(acc, a0); store(acc + 8, a1);
    }
  }
}

struct Tensor4 {  // a strided [B, heads, T, D] view with contiguous d
  const float* p;
  long sb, sh, st;
  const float* row(long b, long h, long t) const { return p + b * sb + h * sh + t * st; }
};

struct Work {
  long b, start, len, kvh;
};

// Runs fn(work, thread_buffer) over all (row, kv head) items on nthreads threads, longest rows first.
template <class Fn>
void run_items(const long* spans, int R, int Hk, int nthreads, size_t buf_floats, Fn fn) {
  std::vector<Work> items;
  items.reserve(size_t(R) * Hk);
  for (int i = 0; i < R; ++i)
    for (int h = 0; h < Hk; ++h) items.push_back({spans[3 * i], spans[3 * i + 1], spans[3 * i + 2] - spans[3 * i + 1], h});
  std::stable_sort(items.begin(), items.end(), [](const Work& a, const Work& b) { return a.len > b.len; });
  const long n_items = long(items.size());
#ifdef _OPENMP
  // PyTorch's own OpenMP pool (its libgomp is the process's libgomp.so.1): its threads are still
  // spinning from the previous op and pick the items up at once; threads of our own would compete
  // with them for the cores.
#pragma omp parallel num_threads(std::max(1, std::min<int>(nthreads, int(n_items))))
  {
    std::vector<float> buf(buf_floats);
#pragma omp for schedule(dynamic, 1)
    for (long i = 0; i < n_items; ++i) fn(items[i], buf.data());
  }
#else
  std::atomic<long> next{0};
  auto worker = [&]() {
    std::vector<float> buf(buf_floats);
    for (long i; (i = next.fetch_add(1)) < n_items;) fn(items[i], buf.data());
  };
  int extra = std::max(0, std::min<int>(nthreads, int(n_items)) - 1);
  std::vector<std::thread> pool;
  pool.reserve(extra);
  for (int t = 0; t < extra; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
#endif
}

inline long round_up(long x, long m) { return (x + m - 1) / m * m; }

// dst[d][j] = src_j[d] for j < L, zero for L <= j < Lp.
void pack_transposed(const Tensor4& x, long b, long h, long start, long L, long Lp, int D, float* dst) {
  for (long j = 0; j < L; ++j) {
    const float* s = x.row(b, h, start + j);
    for (int d = 0; d < D; ++d) dst[d * Lp + j] = s[d];
  }
  for (int d = 0; d < D; ++d) std::fill(dst + d * Lp + L, dst + (d + 1) * Lp, 0.0f);
}

// Scores S (unscaled, [4][Lp]) -> probabilities exp(scale * S - lse_r) with entries j >= limit[r] set to 0.
void probabilities(float* S, long Lp, int n16, const int limit[BM], const float lse[BM], float scale) {
  for (int r = 0; r < BM; ++r) {
    float* s = S + r * Lp;
    const v8 vs = splat(scale), vl = splat(lse[r]);
    for (int j = 0; j < n16; j += 8) store(s + j, exp_nonpositive(load(s + j) * vs - vl));
    std::fill(s + limit[r], s + n16, 0.0f);
  }
}

}  // namespace

extern "C" {

// Forward. Returns 0.
int row_attention_forward(const float* q, long sqb, long sqh, long sqt, const float* k, long skb, long skh, long skt,
                          const float* v, long svb, long svh, long svt, int H, int Hk, int D, long T,
                          const long* spans, int R, long max_len, float scale, float* out, float* lse, int nthreads) {
  const Tensor4 Q{q, sqb, sqh, sqt}, K{k, skb, skh, skt}, V{v, svb, svh, svt};
  const int G = H / Hk;
  const long Lmax = round_up(max_len, BN);
  static const float zeros[1024] = {};  // stands in for query rows past a row's end (D <= 1024)
  run_items(spans, R, Hk, nthreads, size_t(D) * Lmax + BM * Lmax, [&](const Work& w, float* buf) {
    const long L = w.len, Lp = round_up(L, BN);
    float* KT = buf;
    float* S = buf + size_t(D) * Lmax;
    pack_transposed(K, w.b, w.kvh, w.start, L, Lp, D, KT);
    for (int g = 0; g < G; ++g) {
      const long h = w.kvh * G + g;
      for (long i0 = 0; i0 < L; i0 += BM) {
        const int bm = int(std::min<long>(BM, L - i0));
        const int n = int(i0 + bm), n16 = int(round_up(n, BN));
        const float* A[BM];
        int limit[BM];
        for (int r = 0; r < BM; ++r) {
          A[r] = r < bm ? Q.row(w.b, h, w.start + i0 + r) : zeros;
          limit[r] = r < bm ? int(i0 + r + 1) : 0;
        }
        rows_times_packed(A, KT, Lp, D, S, Lp, n16);
        float rmax[BM], inv[BM];
        float* o[BM];
        for (int r = 0; r < BM; ++r) {
          float* s = S + r * Lp;
          if (r >= bm) { rmax[r] = 0.0f; o[r] = nullptr; inv[r] = 0.0f; continue; }
          float m = -INFINITY;
          int j = 0;
          v8 vm = splat(-INFINITY);
          for (; j + 8 <= limit[r]; j += 8) { v8 x = load(s + j); vm = x > vm ? x : vm; }
          m = hmax(vm);
          for (; j < limit[r]; ++j) m = std::max(m, s[j]);
          rmax[r] = m * scale;
          o[r] = out + ((w.b * T + w.start + i0 + r) * H + h) * D;
        }
        probabilities(S, Lp, n16, limit, rmax, scale);  // exp(scale * s - scale * max)
        for (int r = 0; r < bm; ++r) {
          const float* s = S + r * Lp;
          v8 acc = {};
          for (int j = 0; j < n16; j += 8) acc += load(s + j);
          const float l = hsum(acc);
          inv[r] = 1.0f / l;
          lse[(w.b * H + h) * T + w.start + i0 + r] = rmax[r] + std::log(l);
        }
        tile_times_rows(S, Lp, n, V.row(w.b, w.kvh, w.start), svt, D, o, inv);
      }
    }
  });
  return 0;
}

// Backward. dout has the strides of a [B, T, H, D] tensor (sdb, sdt, sdh); out is the forward's output.
int row_attention_backward(const float* q, long sqb, long sqh, long sqt, const float* k, long skb, long skh, long skt,
                           const float* v, long svb, long svh, long svt, const float* out, const float* dout, long sdb,
                           long sdt, long sdh, const float* lse, int H, int Hk, int D, long T, const long* spans, int R,
                           long max_len, float scale, float* dq, float* dk, float* dv, int nthreads) {
  const Tensor4 Q{q, sqb, sqh, sqt}, K{k, skb, skh, skt}, V{v, svb, svh, svt};
  const Tensor4 O{out, long(T) * H * D, long(D), long(H) * D}, dO{dout, sdb, sdh, sdt};
  const int G = H / Hk;
  const long Lmax = round_up(max_len, BN);
  static const float zeros[1024] = {};
  const size_t buf = 2 * size_t(D) * Lmax + 2 * BM * Lmax + Lmax;
  run_items(spans, R, Hk, nthreads, buf, [&](const Work& w, float* mem) {
    const long L = w.len, Lp = round_up(L, BN);
    float* KT = mem;
    float* VT = KT + size_t(D) * Lmax;
    float* P = VT + size_t(D) * Lmax;
    float* dS = P + BM * Lmax;
    float* delta = dS + BM * Lmax;
    pack_transposed(K, w.b, w.kvh, w.start, L, Lp, D, KT);
    pack_transposed(V, w.b, w.kvh, w.start, L, Lp, D, VT);
    const long kv_stride = long(Hk) * D;  // dk / dv row stride
    float* dk0 = dk + ((w.b * T + w.start) * Hk + w.kvh) * D;
    float* dv0 = dv + ((w.b * T + w.start) * Hk + w.kvh) * D;
    for (long j = 0; j < L; ++j) {
      std::fill(dk0 + j * kv_stride, dk0 + j * kv_stride + D, 0.0f);
      std::fill(dv0 + j * kv_stride, dv0 + j * kv_stride + D, 0.0f);
    }
    for (int g = 0; g < G; ++g) {
      const long h = w.kvh * G + g;
      for (long i = 0; i < L; ++i) {  // delta_i = dO_i . O_i
        const float* a = dO.row(w.b, h, w.start + i);
        const float* c = O.row(w.b, h, w.start + i);
        v8 acc = {};
        for (int d = 0; d < D; d += 8) acc += load(a + d) * load(c + d);
        delta[i] = hsum(acc);
      }
      for (long i0 = 0; i0 < L; i0 += BM) {
        const int bm = int(std::min<long>(BM, L - i0));
        const int n = int(i0 + bm), n16 = int(round_up(n, BN));
        const float* Qr[BM];
        const float* dOr[BM];
        float* dqr[BM];
        int limit[BM];
        float lse_r[BM], scales[BM];
        for (int r = 0; r < BM; ++r) {
          const bool real = r < bm;
          Qr[r] = real ? Q.row(w.b, h, w.start + i0 + r) : zeros;
          dOr[r] = real ? dO.row(w.b, h, w.start + i0 + r) : zeros;
          dqr[r] = real ? dq + ((w.b * T + w.start + i0 + r) * H + h) * D : nullptr;
          limit[r] = real ? int(i0 + r + 1) : 0;
          lse_r[r] = real ? lse[(w.b * H + h) * T + w.start + i0 + r] : 0.0f;
          scales[r] = scale;
        }
        rows_times_packed(Qr, KT, Lp, D, P, Lp, n16);
        probabilities(P, Lp, n16, limit, lse_r, scale);
        rows_times_packed(dOr, VT, Lp, D, dS, Lp, n16);  // dP
        for (int r = 0; r < BM; ++r) {  // dS = P * (dP - delta) (zero where P is)
          float* ds = dS + r * Lp;
          const float* p = P + r * Lp;
          const v8 dl = splat(r < bm ? delta[i0 + r] : 0.0f);
          for (int j = 0; j < n16; j += 8) store(ds + j, load(p + j) * (load(ds + j) - dl));
        }
        tile_times_rows(dS, Lp, n, K.row(w.b, w.kvh, w.start), skt, D, dqr, scales);
        add_outer(P, Lp, n, dOr, D, dv0, kv_stride);
        for (int r = 0; r < BM; ++r)
          for (int j = 0; j < n16; j += 8) store(dS + r * Lp + j, load(dS + r * Lp + j) * splat(scale));
        add_outer(dS, Lp, n, Qr, D, dk0, kv_stride);
      }
    }
  });
  return 0;
}

}  // extern "C"
