// exp, log and tanh written as plain arithmetic on floating-point bits, for the softmax loops
// and the tanh cell of pointwise.cpp.
//
// Why not std::exp / std::log: they are opaque library calls, so a loop that calls them stays
// scalar (one call per element), and a softmax over the book's (1024 x 30) logits spends most of
// its time there. These inline functions have no calls and no branches, so GCC vectorises the
// loops around them at whatever width the target clone has. Each is only defined on the domain
// a softmax gives it (see each function); both are within a few ulp of std::exp / std::log
// there (tests/test_lm_head_loss.py compares the op with torch in float32 and float64).
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace rnnfast::vec_math {

template <typename T>
struct Bits;
template <>
struct Bits<float> {
  using Int = int32_t;
  using UInt = uint32_t;
  static constexpr int kMantissa = 23;
  static constexpr Int kBias = 127;
};
template <>
struct Bits<double> {
  using Int = int64_t;
  using UInt = uint64_t;
  static constexpr int kMantissa = 52;
  static constexpr Int kBias = 1023;
};

// ln 2 split in two (Cody and Waite): n * kLn2Hi is exact for every exponent n met here, so
// x - n ln 2 loses nothing to cancellation.
template <typename T>
constexpr T kLn2Hi = std::is_same_v<T, float> ? T(0.693359375) : T(6.93147180369123816490e-01);
template <typename T>
constexpr T kLn2Lo = std::is_same_v<T, float> ? T(-2.12194440e-4) : T(1.90821492927058770002e-10);

// e^x for x <= 0, x = -Inf or NaN: a softmax's argument once the row's maximum is subtracted.
// NaN stays NaN, -Inf gives 0, and results below the smallest normal number (x < -87.3 in
// float32, x < -708.4 in float64) are flushed to 0 where std::exp gives a subnormal number.
template <typename T>
inline T exp_nonpositive(T x) {
  using Int = typename Bits<T>::Int;
  constexpr int kM = Bits<T>::kMantissa;
  // ln of the smallest normal number: e^x = 2^n p with n >= -(bias - 1) above it.
  constexpr T kMin = std::is_same_v<T, float> ? T(-87.33654475) : T(-708.39641853226408);
  constexpr T kLog2e = T(1.4426950408889634074);
  // 1.5 * 2^kM: adding it rounds to the nearest integer, which lands in the low mantissa bits.
  constexpr T kRound = T(1.5) * T(Int{1} << kM);
  const T xc = x < kMin ? kMin : x;  // NaN compares false and stays NaN
  const T shifted = xc * kLog2e + kRound;
  const T n = shifted - kRound;
  const T r = (xc - n * kLn2Hi<T>) - n * kLn2Lo<T>;  // |r| <= ln(2) / 2
  T p;
  if constexpr (std::is_same_v<T, float>) {
    // Cephes' expf: e^r = 1 + r + r^2 P(r), a minimax polynomial, about 1 ulp.
    p = T(1.9875691500e-4);
    p = p * r + T(1.3981999507e-3);
    p = p * r + T(8.3334519073e-3);
    p = p * r + T(4.1665795894e-2);
    p = p * r + T(1.6666665459e-1);
    p = p * r + T(5.0000001201e-1);
    p = p * (r * r) + r + T(1);
  } else {
    // Taylor series to r^13 / 13!: the next term is below 5e-18 for |r| <= ln(2) / 2.
    constexpr double kInvFactorial[] = {
        1.0,
        1.0,
        1.0 / 2,
        1.0 / 6,
        1.0 / 24,
        1.0 / 120,
        1.0 / 720,
        1.0 / 5040,
        1.0 / 40320,
        1.0 / 362880,
        1.0 / 3628800,
        1.0 / 39916800,
        1.0 / 479001600,
        1.0 / 6227020800.0,
    };
    p = kInvFactorial[13];
    for (int k = 12; k >= 0; --k) p = p * r + kInvFactorial[k];
  }
  // 2^n built from its exponent bits; n >= -(bias - 1) because xc >= kMin. (Unsigned: for a NaN
  // x these bits are garbage, multiplied into a NaN below, and must not overflow a signed int.)
  using UInt = typename Bits<T>::UInt;
  const UInt n_bits = std::bit_cast<UInt>(shifted) - std::bit_cast<UInt>(kRound);
  const T scale = std::bit_cast<T>((n_bits + UInt(Bits<T>::kBias)) << kM);
  return x < kMin ? T(0) : p * scale;
}

// ln(x) for positive, normal, finite x or NaN (NaN stays NaN): a softmax's sum of
// exponentials, which lies in [1, number of terms].
template <typename T>
inline T log_positive(T x) {
  using Int = typename Bits<T>::Int;
  constexpr int kM = Bits<T>::kMantissa;
  constexpr Int kMantissaMask = (Int{1} << kM) - 1;
  // x = 2^e f with f in [1, 2), then f halved above sqrt(2) so that f lies in [sqrt(1/2), sqrt(2)).
  const Int bits = std::bit_cast<Int>(x);
  Int e = (bits >> kM) - Bits<T>::kBias;
  T f = std::bit_cast<T>(static_cast<Int>((bits & kMantissaMask) | (Bits<T>::kBias << kM)));
  const bool above = f > T(1.41421356237309504880);
  f = above ? f * T(0.5) : f;
  e = above ? e + 1 : e;
  // ln f = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...), z = (f - 1) / (f + 1), |z| <= 0.1716.
  const T z = (f - T(1)) / (f + T(1));
  const T z2 = z * z;
  // Terms to z^9 (float32) or z^23 (float64): the next is below 1e-9 or 2e-20 of the sum.
  constexpr int kTerms = std::is_same_v<T, float> ? 5 : 12;
  constexpr T kInvOdd[] = {T(1),      T(1) / 3,  T(1) / 5,  T(1) / 7,  T(1) / 9,  T(1) / 11,
                           T(1) / 13, T(1) / 15, T(1) / 17, T(1) / 19, T(1) / 21, T(1) / 23};
  T q = kInvOdd[kTerms - 1];
  for (int k = kTerms - 2; k >= 0; --k) q = q * z2 + kInvOdd[k];
  const T ln_f = T(2) * z * q;
  const T ef = static_cast<T>(e);
  const T result = ef * kLn2Hi<T> + (ln_f + ef * kLn2Lo<T>);
  return x != x ? x : result;
}

// tanh(x) for any x: within about 1 ulp of std::tanh (measured over [-10, 10] and +-1e-30..10
// in float32 and float64); +-Inf gives +-1 and NaN stays NaN. Two branches, both computed and
// selected, so the loop stays vectorised:
// - |x| >= 0.625: (1 - e) / (1 + e) with e = e^(-2|x|) <= 0.29, so 1 - e does not cancel;
// - |x| < 0.625: Cephes' odd minimax polynomial (float32) or rational function (float64) in x^2,
//   exact to rounding where the first form would lose digits.
template <typename T>
inline T tanh(T x) {
  const T a = x < T(0) ? -x : x;
  const T e = exp_nonpositive(T(-2) * a);
  const T large = (T(1) - e) / (T(1) + e);
  const T z = x * x;
  T small;
  if constexpr (std::is_same_v<T, float>) {
    T p = T(-5.70498872745e-3);
    p = p * z + T(2.06390887954e-2);
    p = p * z + T(-5.37397155531e-2);
    p = p * z + T(1.33314422036e-1);
    p = p * z + T(-3.33332819422e-1);
    small = p * z * x + x;
  } else {
    const T num = (T(-9.64399179425052238628e-1) * z + T(-9.92877231001918586564e1)) * z +
                  T(-1.61468768441708447952e3);
    const T den = ((z + T(1.12811678491632931402e2)) * z + T(2.23548839060100448583e3)) * z +
                  T(4.84406305325125486048e3);
    small = x + x * z * (num / den);
  }
  return a < T(0.625) ? small : (x < T(0) ? -large : large);
}

}  // namespace rnnfast::vec_math
