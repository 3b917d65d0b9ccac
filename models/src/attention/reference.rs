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

/// `exp(s_j − max) / Σ exp(s_k − max)`.
fn softmax(scores: &[f32]) -> Vec<f32> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = scores.iter().map(|x| (x - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
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
                for (j, p) in softmax(&scores).iter().enumerate() {
                    for i in 0..d {
                        concat[hh * d + i] += p * v[j][g][i];
                    }
                }
            }
            out.extend(wo.apply(&concat));
        }
    }
    out
}

/// `x / sqrt(mean(x²) + eps) · g`.
fn rms_norm(x: &[f32], g: &[f32], eps: f32) -> Vec<f32> {
    assert_eq!(x.len(), g.len(), "reference RMSNorm width");
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = (ms + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v / r * g).collect()
}

/// Shapes of an MLA layer for [`mla_forward`].
#[derive(Debug, Clone, Copy)]
pub struct MlaShape {
    /// Attention heads.
    pub n_heads: usize,
    /// Per-head width of the compressed query/key part and of the values (`d_h`).
    pub d_head: usize,
    /// Width of the decoupled RoPE part (`d_h^R`).
    pub d_rope: usize,
    /// Width of the joint KV latent (`d_c`).
    pub d_latent_kv: usize,
    /// RoPE base.
    pub theta: f32,
    /// RMSNorm epsilon of the two latents.
    pub eps: f32,
}

/// MLA weights for [`mla_forward`], in the equations' roles (DeepSeek-V2, eqs. 9–19).
#[derive(Debug, Clone)]
pub struct MlaWeights {
    /// `W^{DQ}`: `h → c_Q`.
    pub w_dq: Dense,
    /// RMSNorm gain of `c_Q`.
    pub q_norm: Vec<f32>,
    /// `W^{UQ}`: `c_Q → [q_C,1 … q_C,n_h]`.
    pub w_uq: Dense,
    /// `W^{QR}`: `c_Q → [q_R,1 … q_R,n_h]` (before RoPE).
    pub w_qr: Dense,
    /// `W^{DKV}`: `h → c_KV`.
    pub w_dkv: Dense,
    /// RMSNorm gain of `c_KV`.
    pub kv_norm: Vec<f32>,
    /// `W^{KR}`: `h → k_R` (before RoPE), shared by all heads.
    pub w_kr: Dense,
    /// `W^{UK}` per head, row-major `[n_heads, d_c, d_head]`: `k_C,i[j] = Σ_c c_KV[c]·W[i][c][j]`.
    pub w_uk: Vec<f32>,
    /// `W^{UV}` per head, laid out as `w_uk`.
    pub w_uv: Vec<f32>,
    /// `W^O`: `[o_1 … o_n_h] → u`.
    pub w_o: Dense,
}

/// Causal MLA over a whole sequence, straight from the equations: per token, the query latent
/// and per-head queries `[q_C,i | RoPE(q_R,i)]`; the KV latent, per-head keys
/// `[W^{UK}_i·c_KV | RoPE(k_R)]` and values `W^{UV}_i·c_KV`; softmax of `q·k / √(d_h + d_h^R)`.
///
/// # Shapes
/// - `x`: `[batch, s, d_model]` row-major; output likewise.
pub fn mla_forward(w: &MlaWeights, shape: MlaShape, x: &[f32], batch: usize, s: usize) -> Vec<f32> {
    let (h, d, r, c) = (shape.n_heads, shape.d_head, shape.d_rope, shape.d_latent_kv);
    let d_model = w.w_dq.d_in;
    let up = |m: &[f32], head: usize, latent: &[f32]| -> Vec<f32> {
        (0..d)
            .map(|j| (0..c).map(|i| latent[i] * m[(head * c + i) * d + j]).sum())
            .collect()
    };
    let mut out = Vec::with_capacity(batch * s * d_model);
    for b in 0..batch {
        // Per token t: queries [head][d + r], keys [head][d + r], values [head][d].
        let mut q = Vec::new();
        let mut k = Vec::new();
        let mut v = Vec::new();
        for t in 0..s {
            let x_t = &x[(b * s + t) * d_model..(b * s + t + 1) * d_model];
            let c_q = rms_norm(&w.w_dq.apply(x_t), &w.q_norm, shape.eps);
            let (q_c, q_r) = (w.w_uq.apply(&c_q), w.w_qr.apply(&c_q));
            let c_kv = rms_norm(&w.w_dkv.apply(x_t), &w.kv_norm, shape.eps);
            let mut k_r = w.w_kr.apply(x_t);
            rope(&mut k_r, t, shape.theta);
            let (mut qt, mut kt, mut vt) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..h {
                let mut qr = q_r[i * r..(i + 1) * r].to_vec();
                rope(&mut qr, t, shape.theta);
                qt.push([&q_c[i * d..(i + 1) * d], &qr[..]].concat());
                kt.push([up(&w.w_uk, i, &c_kv), k_r.clone()].concat());
                vt.push(up(&w.w_uv, i, &c_kv));
            }
            q.push(qt);
            k.push(kt);
            v.push(vt);
        }
        let scale = 1.0 / ((d + r) as f32).sqrt();
        for (t, q_t) in q.iter().enumerate() {
            let mut concat = vec![0f32; h * d];
            for i in 0..h {
                let scores: Vec<f32> = (0..=t)
                    .map(|j| q_t[i].iter().zip(&k[j][i]).map(|(a, b)| a * b).sum::<f32>() * scale)
                    .collect();
                for (j, p) in softmax(&scores).iter().enumerate() {
                    for n in 0..d {
                        concat[i * d + n] += p * v[j][i][n];
                    }
                }
            }
            out.extend(w.w_o.apply(&concat));
        }
    }
    out
}
