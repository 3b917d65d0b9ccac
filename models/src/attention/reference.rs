//! Plain-loop references, written for clarity rather than speed, that the burn modules are tested
//! against. Nothing here shares code with the modules it checks.

/// A dense weight matrix applied as `y = x·W`, row-major `[d_in, d_out]`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

impl Dense {
    /// `x·W` for one input row.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.d_in, "reference Dense input width");
        let mut y = vec![0f32; self.d_out];
        for (i, xi) in x.iter().enumerate() {
            for (o, yo) in y.iter_mut().enumerate() {
                *yo += xi * self.data[i * self.d_out + o];
            }
        }
        y
    }
}

/// Rotates interleaved pairs `(x[2i], x[2i+1])` by `pos·θ^(-2i/d)` (RoFormer, eq. 34).
pub fn rope(x: &mut [f32], pos: usize, theta: f32) {
    let d = x.len();
    for i in 0..d / 2 {
        let freq = theta.powf(-((2 * i) as f32) / d as f32);
        let (sin, cos) = (pos as f32 * freq).sin_cos();
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        x[2 * i] = a * cos - b * sin;
        x[2 * i + 1] = a * sin + b * cos;
    }
}

/// Shapes of a GQA layer for [`gqa_forward`].
#[derive(Debug, Clone, Copy)]
pub struct GqaShape {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head width.
    pub d_head: usize,
    /// RoPE base.
    pub theta: f32,
}

/// Causal GQA over a whole sequence, head by head, with query head `h` reading KV head
/// `h / (n_heads / n_kv_heads)`.
///
/// # Shapes
/// - `x`: `[batch, s, d_model]` row-major; output likewise.
pub fn gqa_forward(w: [&Dense; 4], shape: GqaShape, x: &[f32], batch: usize, s: usize) -> Vec<f32> {
    let [wq, wk, wv, wo] = w;
    let (h, kv, d) = (shape.n_heads, shape.n_kv_heads, shape.d_head);
    let d_model = wq.d_in;
    let group = h / kv;
    let mut out = Vec::with_capacity(batch * s * d_model);
    for b in 0..batch {
        let rows: Vec<&[f32]> = (0..s)
            .map(|t| &x[(b * s + t) * d_model..(b * s + t + 1) * d_model])
            .collect();
        let heads = |w: &Dense, n: usize, rotate: bool| -> Vec<Vec<Vec<f32>>> {
            // [t][head][d]
            rows.iter()
                .enumerate()
                .map(|(t, r)| {
                    let y = w.apply(r);
                    (0..n)
                        .map(|hh| {
                            let mut v = y[hh * d..(hh + 1) * d].to_vec();
                            if rotate {
                                rope(&mut v, t, shape.theta);
                            }
                            v
                        })
                        .collect()
                })
                .collect()
        };
        let (q, k, v) = (
            heads(wq, h, true),
            heads(wk, kv, true),
            heads(wv, kv, false),
        );
        for (t, q_t) in q.iter().enumerate() {
            let mut concat = vec![0f32; h * d];
            for hh in 0..h {
                let g = hh / group;
                let scores: Vec<f32> = (0..=t)
                    .map(|j| {
                        q_t[hh]
                            .iter()
                            .zip(&k[j][g])
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            / (d as f32).sqrt()
                    })
                    .collect();
                let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                for (j, p) in e.iter().enumerate() {
                    for i in 0..d {
                        concat[hh * d + i] += p / z * v[j][g][i];
                    }
                }
            }
            out.extend(wo.apply(&concat));
        }
    }
    out
}
