//! The one numeric kernel the native VAD needs: a small dense matrix times a few columns.
//!
//! Every layer of Silero (the STFT as a convolution, four 1-D convolutions over a time-major
//! layout where a receptive field is one contiguous slice, and the LSTM gates) is
//! `Y = W · [x_0 … x_{C-1}]` with `W` row-major `M × K`, `K` a multiple of 8, and up to four
//! columns at a time. Blocks of 3 rows × C columns keep 3·C 8-lane accumulators in registers and
//! load each weight once per C columns; that reuse across columns (a call's 4 STFT frames, or
//! the same layer across the calls of a batch) is where batching pays.
//!
//! Written in safe Rust: fixed-size lane arrays that LLVM turns into AVX2 FMAs in the
//! `x86_64+avx2+fma` clone `multiversion` builds and selects at run time (SSE2 elsewhere).
//! The summation order is fixed, so results never depend on batch composition.

/// Lanes per accumulator: one AVX register of f32.
pub const LANES: usize = 8;
/// Most columns one kernel call handles.
pub const MAX_COLUMNS: usize = 4;

#[inline(always)]
fn block<const R: usize, const C: usize, const FMA: bool>(
    w: &[f32],
    k: usize,
    row: usize,
    xs: &[&[f32]; C],
) -> [[f32; C]; R] {
    let mut acc = [[[0f32; LANES]; C]; R];
    for i in 0..k / LANES {
        let mut wv = [[0f32; LANES]; R];
        for (r, v) in wv.iter_mut().enumerate() {
            let start = (row + r) * k + i * LANES;
            v.copy_from_slice(&w[start..start + LANES]);
        }
        for c in 0..C {
            let mut xv = [0f32; LANES];
            xv.copy_from_slice(&xs[c][i * LANES..(i + 1) * LANES]);
            for r in 0..R {
                for l in 0..LANES {
                    acc[r][c][l] = if FMA {
                        wv[r][l].mul_add(xv[l], acc[r][c][l])
                    } else {
                        acc[r][c][l] + wv[r][l] * xv[l]
                    };
                }
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = acc[r][c].iter().sum();
        }
    }
    out
}

/// `out[c * m + r] = Σ_k w[r * k + k'] · xs[c][k']` for rows `r < m` and the `C` columns.
///
/// # Panics
/// If `k` is not a multiple of [`LANES`], a column is shorter than `k`, `w` shorter than `m·k`
/// or `out` shorter than `C·m`.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn matmul<const C: usize>(w: &[f32], k: usize, m: usize, xs: &[&[f32]; C], out: &mut [f32]) {
    assert!(k.is_multiple_of(LANES) && w.len() >= m * k && out.len() >= C * m);
    assert!(xs.iter().all(|x| x.len() >= k));
    const FMA: bool = multiversion::target::target_cfg_f!(target_feature = "fma");
    let mut row = 0;
    while row + 3 <= m {
        let block = block::<3, C, FMA>(w, k, row, xs);
        for (r, values) in block.iter().enumerate() {
            for (c, v) in values.iter().enumerate() {
                out[c * m + row + r] = *v;
            }
        }
        row += 3;
    }
    while row < m {
        let block = block::<1, C, FMA>(w, k, row, xs);
        for (c, v) in block[0].iter().enumerate() {
            out[c * m + row] = *v;
        }
        row += 1;
    }
}

/// `tanh` by Eigen's 13/6 rational approximation: within a few ulp of the exact value,
/// branch-free, so the LSTM's 640 activations per stream vectorise.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p * x2 + 2.000_188e-13;
    p = p * x2 - 8.604_672e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    p *= x;
    let mut q = 1.198_258_4e-6f32;
    q = q * x2 + 1.185_347_1e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    p / q
}

/// The logistic function through [`tanh`]: σ(x) = ½ + ½·tanh(x/2).
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh(0.5 * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], k: usize, m: usize, xs: &[&[f32]]) -> Vec<f32> {
        let mut out = vec![0.0; xs.len() * m];
        for (c, x) in xs.iter().enumerate() {
            for r in 0..m {
                out[c * m + r] =
                    (0..k).map(|i| f64::from(w[r * k + i]) * f64::from(x[i])).sum::<f64>() as f32;
            }
        }
        out
    }

    fn check<const C: usize>(m: usize, k: usize) {
        let w: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.5).collect();
        let cols: Vec<Vec<f32>> = (0..C)
            .map(|c| (0..k).map(|i| ((i * 31 + c * 17) % 29) as f32 / 29.0 - 0.5).collect())
            .collect();
        let xs: [&[f32]; C] = std::array::from_fn(|c| cols[c].as_slice());
        let mut out = vec![0.0; C * m];
        matmul::<C>(&w, k, m, &xs, &mut out);
        let expected = naive(&w, k, m, &xs);
        for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
            assert!((a - b).abs() < 1e-4, "C={C} m={m} k={k} out[{i}]: {a} vs {b}");
        }
    }

    #[test]
    fn matmul_matches_a_naive_product_for_every_column_count_and_row_remainder() {
        for m in [1, 2, 3, 4, 5, 64, 129, 258] {
            check::<1>(m, 16);
            check::<2>(m, 24);
            check::<3>(m, 256);
            check::<4>(m, 408);
        }
    }

    #[test]
    fn tanh_and_sigmoid_are_accurate_to_a_few_ulp() {
        let mut worst = 0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((tanh(x) - x.tanh()).abs());
            worst = worst.max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
        }
        assert!(worst < 1e-6, "worst error {worst}");
    }
}
